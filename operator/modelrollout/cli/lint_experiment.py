"""`kubectl modelrollout lint` checks of an A/B experiment: a sample it can reach, a sticky key routes can use."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

from modelrollout.api.common import seconds
from modelrollout.api.experiment import cap_of
from modelrollout.api.spec import ModelRolloutSpec

Severity = Literal["error", "warning"]
Issue = tuple[Severity, str, str]
FIELD = "spec.strategy.experiment"


def experiment_issues(spec: ModelRolloutSpec) -> Iterator[Issue]:
    ab = spec.strategy.experiment
    if ab is None:
        return
    planned = ab.planned_trials(None)
    if planned is None:
        yield (
            "warning",
            f"{FIELD}.baselineRate",
            "no baselineRate: the sample size is unknown until stable's rate is observed, and lint cannot "
            "check that the traffic reaches it",
        )
    elif ab.max_trials_per_arm is not None and ab.max_trials_per_arm < planned:
        yield (
            "error",
            f"{FIELD}.maxTrialsPerArm",
            f"{ab.max_trials_per_arm} trials per arm is below the {planned} a fixed-horizon test needs to detect "
            f"{ab.minimum_detectable_effect:.0%} at alpha {ab.alpha:g} with power {ab.power:g}: the experiment "
            "would end 'no difference' before it could see the declared effect",
        )
    cap = cap_of(planned, ab.max_trials_per_arm)
    if cap is not None and ab.expected_trials_per_hour is not None:
        hours = cap / ab.expected_trials_per_hour
        limit = seconds(ab.max_duration) / 3600
        if hours > limit:
            yield (
                "error",
                f"{FIELD}.maxDuration",
                f"the cap of {cap} trials per arm takes {hours:.1f}h at {ab.expected_trials_per_hour:g} trials "
                f"per hour, longer than maxDuration {ab.max_duration}: the traffic cannot reach the sample, so "
                "the experiment can only end without a significant result",
            )
    key = ab.assignment.header
    for item in spec.slices:
        if key is not None and key in item.match.headers:
            yield (
                "warning",
                f"{FIELD}.assignment.header",
                f"slice {item.name} also matches on {key}: its users' arm and slice depend on the same id, "
                "so the slice's arms are not comparable samples of it",
            )
