"""A/B experiments: the anytime-valid comparison of a ratio metric between two arms, and the sample size.

The primary metric of an arm is a ratio of two counters (conversions over impressions). Its estimate
p = successes / trials has variance p (1 - p) / trials; the difference of the arms, d = p_c - p_s, has
V = p_c (1 - p_c) / n_c + p_s (1 - p_s) / n_s and is close to normal once each arm has a few hundred
trials.

Test: a mixture sequential probability ratio test (mSPRT; Johari, Pekelis and Walsh, "Always Valid
Inference", 2017; derived here, not copied). Mixing the normal likelihood ratio of d over alternatives
drawn from N(0, tau^2) gives

    Lambda = sqrt(V / (V + tau^2)) * exp(tau^2 d^2 / (2 V (V + tau^2)))

a nonnegative martingale under d = 0, so by Ville's inequality P(Lambda ever >= 1/alpha) <= alpha:
checking on every interval does not inflate false positives. Inverting it gives a confidence sequence,
d +- sqrt(V (V + tau^2) / tau^2 * (2 log(1/alpha) + log((V + tau^2) / V))), valid at every look too.
tau is the declared minimum detectable effect (absolute), where the test is most powerful. V is plugged
in from the data (the test is asymptotic), so no verdict is given before `MIN_TRIALS` trials and
`MIN_SUCCESSES` successes per arm; `make bench` measures the false-positive rate over simulated A/A
experiments checked every interval, and the power at the declared effect.

Multiple testing across slices: the decision uses the pooled arms at alpha; each slice's effect and its
confidence interval are computed at alpha / (number of slices) (Bonferroni), so under no effect anywhere the
chance of any slice wrongly called better or worse is at most alpha as well.

Stateless: the statistics depend only on the cumulative counts since the experiment began, so a restarted
operator reaches the same verdict.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from modelrollout.analysis.queries import promql_string, sequential_window_seconds, versions_regex
from modelrollout.analysis.results import Sample
from modelrollout.api.experiment import cap_of
from modelrollout.api.experiment import required_trials as required_trials
from modelrollout.api.spec import ModelRolloutSpec
from modelrollout.api.status import ArmEffect, ExperimentStatus

MIN_TRIALS = 200
"""Trials per arm before any verdict: the normal approximation needs some data."""
MIN_SUCCESSES = 10
"""Successes per arm before any verdict."""

Direction = Literal["better", "worse", "none"]


@dataclass(frozen=True)
class Arm:
    """An arm's counters since the experiment began: the metric's numerator and denominator."""

    successes: float
    trials: float

    @property
    def rate(self) -> float:
        return self.successes / self.trials if self.trials > 0 else math.nan

    def __add__(self, other: Arm) -> Arm:
        return Arm(self.successes + other.successes, self.trials + other.trials)


@dataclass(frozen=True)
class Comparison:
    """The candidate arm against stable: the effect, its anytime-valid interval, and the verdict."""

    stable: Arm
    candidate: Arm
    effect: float
    """Candidate rate minus stable rate (absolute)."""
    low: float
    high: float
    """The confidence sequence's bounds on the effect at this look (nan before any verdict)."""
    log_evalue: float
    direction: Direction
    """better/worse: significant at the level asked; none: not (yet)."""
    enough: bool
    """Both arms reached MIN_TRIALS and MIN_SUCCESSES."""

    @property
    def relative(self) -> float:
        """The effect relative to stable's rate (nan when stable has none)."""
        base = self.stable.rate
        return self.effect / base if base > 0 else math.nan

    def describe(self) -> str:
        """e.g. '+10.2% (95% CI +4.1% .. +16.3% of stable's 0.100)' — relative to stable's rate."""
        base = self.stable.rate
        if not self.enough or not base > 0:
            return (
                f"not enough data yet (stable {self.stable.successes:.0f}/{self.stable.trials:.0f}, "
                f"candidate {self.candidate.successes:.0f}/{self.candidate.trials:.0f})"
            )
        return (
            f"{self.effect / base:+.1%} (CI {self.low / base:+.1%} .. {self.high / base:+.1%}) "
            f"on stable's {base:.4f}, candidate {self.candidate.rate:.4f} "
            f"({self.candidate.trials:.0f} vs {self.stable.trials:.0f} trials)"
        )


def _variance(arm: Arm) -> float:
    p = min(max(arm.rate, 0.0), 1.0)
    # Half a success keeps the variance positive when an arm has none (or only) successes so far.
    p = min(max(p, 0.5 / arm.trials), 1.0 - 0.5 / arm.trials)
    return p * (1.0 - p) / arm.trials


def compare(stable: Arm, candidate: Arm, *, alpha: float, tau: float) -> Comparison:
    """The mSPRT comparison at level `alpha`, most powerful near an absolute effect of `tau`."""
    enough = all(a.trials >= MIN_TRIALS and a.successes >= MIN_SUCCESSES for a in (stable, candidate))
    if not enough or tau <= 0:
        effect = candidate.rate - stable.rate if stable.trials > 0 and candidate.trials > 0 else math.nan
        return Comparison(stable, candidate, effect, math.nan, math.nan, 0.0, "none", False)
    effect = candidate.rate - stable.rate
    v = _variance(stable) + _variance(candidate)
    t2 = tau * tau
    log_e = 0.5 * math.log(v / (v + t2)) + t2 * effect * effect / (2.0 * v * (v + t2))
    half = math.sqrt(v * (v + t2) / t2 * (2.0 * math.log(1.0 / alpha) + math.log((v + t2) / v)))
    significant = log_e >= math.log(1.0 / alpha)
    direction: Direction = "none"
    if significant:
        direction = "better" if effect > 0 else "worse"
    return Comparison(stable, candidate, effect, effect - half, effect + half, log_e, direction, True)


def disagreeing(overall: Comparison, slices: dict[str, Comparison]) -> list[str]:
    """Slices whose effect points the other way than the pooled effect (a Simpson's paradox warning)."""
    if not overall.enough or overall.effect == 0 or math.isnan(overall.effect):
        return []
    sign = math.copysign(1.0, overall.effect)
    return [
        name
        for name, c in slices.items()
        if c.enough and not math.isnan(c.effect) and c.effect != 0 and math.copysign(1.0, c.effect) != sign
    ]


# Queries and the status -----------------------------------------------------------------------------------
Counts = dict[str, dict[str, Arm]]
"""slice -> role ('stable' or 'canary') -> the arm's counters since the experiment began."""


def experiment_queries(
    spec: ModelRolloutSpec, namespace: str, stable: str, candidate: str, since: datetime, now: datetime
) -> dict[str, str]:
    """The two PromQL queries ('successes', 'trials'): each counter's increase since the experiment began,
    per slice and version."""
    experiment = spec.strategy.experiment
    assert experiment is not None
    window = f"{sequential_window_seconds(since, now)}s"
    selector = (
        f'namespace="{promql_string(namespace)}",model="{promql_string(spec.model.name)}",'
        f'version=~"{versions_regex(stable, candidate)}"'
    )
    counters = {"successes": experiment.metric.successes, "trials": experiment.metric.trials}
    return {
        key: f"sum by (slice, version) (increase({metric}{{{selector}}}[{window}]))"
        for key, metric in counters.items()
    }


def decode_counts(
    successes: Sequence[Sample], trials: Sequence[Sample], stable: str, candidate: str
) -> Counts:
    """Both queries' samples as arms per slice (series of other versions are ignored)."""
    roles = {stable: "stable", candidate: "canary"}
    values: dict[tuple[str, str], list[float]] = {}
    for index, samples in enumerate((successes, trials)):
        for sample in samples:
            role = roles.get(sample.labels.get("version", ""))
            slice_name = sample.labels.get("slice")
            if role is None or slice_name is None or not math.isfinite(sample.value):
                continue
            values.setdefault((slice_name, role), [0.0, 0.0])[index] += max(0.0, sample.value)
    counts: Counts = {}
    for (slice_name, role), (wins, total) in values.items():
        counts.setdefault(slice_name, {})[role] = Arm(min(wins, total), total)
    return counts


def _effect(name: str, c: Comparison) -> ArmEffect:
    base = c.stable.rate

    def rel(x: float) -> float | None:
        return x / base if c.enough and base > 0 and math.isfinite(x) else None

    return ArmEffect(
        slice=name,
        stable_rate=base if math.isfinite(base) else None,
        candidate_rate=c.candidate.rate if math.isfinite(c.candidate.rate) else None,
        stable_trials=round(c.stable.trials),
        candidate_trials=round(c.candidate.trials),
        effect=rel(c.effect),
        low=rel(c.low),
        high=rel(c.high),
        direction=c.direction,
    )


@dataclass(frozen=True)
class Summary:
    """One look at the experiment: the pooled comparison, each slice's, and what the status shows."""

    overall: Comparison
    slices: dict[str, Comparison]
    status: ExperimentStatus
    capped: bool
    """Both arms reached the sample cap."""


def summarize(spec: ModelRolloutSpec, counts: Counts) -> Summary:
    """Compares the arms pooled (at alpha) and per declared slice (at alpha / slices, Bonferroni)."""
    experiment = spec.strategy.experiment
    assert experiment is not None
    names = spec.slice_names()
    empty = Arm(0.0, 0.0)
    stable = sum((counts.get(n, {}).get("stable", empty) for n in names), empty)
    candidate = sum((counts.get(n, {}).get("canary", empty) for n in names), empty)
    planned = experiment.planned_trials(stable.rate if stable.trials >= MIN_TRIALS else None)
    tau_base = experiment.baseline_rate or (stable.rate if stable.trials > 0 else 0.0)
    tau = experiment.minimum_detectable_effect * tau_base
    overall = compare(stable, candidate, alpha=experiment.alpha, tau=tau)
    per_slice = {
        n: compare(
            counts.get(n, {}).get("stable", empty),
            counts.get(n, {}).get("canary", empty),
            alpha=experiment.alpha / len(names),
            tau=tau,
        )
        for n in names
    }
    cap = cap_of(planned, experiment.max_trials_per_arm)
    smaller = min(stable.trials, candidate.trials)
    against = disagreeing(overall, per_slice)
    warning = (
        f"slices {', '.join(against)} move the other way than the overall effect ({overall.effect:+.4f}): "
        "the pooled result hides them (Simpson's paradox); read the per-slice effects"
        if against
        else ""
    )
    status = ExperimentStatus(
        metric=experiment.metric.name,
        planned_trials_per_arm=planned,
        cap_trials_per_arm=cap,
        progress=min(1.0, smaller / cap) if cap else 0.0,
        overall=_effect("overall", overall),
        slices=[_effect(n, c) for n, c in per_slice.items()],
        warning=warning,
    )
    return Summary(overall, per_slice, status, capped=cap is not None and smaller >= cap)
