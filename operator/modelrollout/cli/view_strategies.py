"""The strategy-specific rows of `kubectl modelrollout status`: what the canary, blue-green and QA override
are doing, from the stored object alone."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from modelrollout.api.common import seconds
from modelrollout.api.matching import HeaderRoute
from modelrollout.api.status import CARRIES_CANDIDATE

if TYPE_CHECKING:
    from modelrollout.cli.view import Rollout


def _header(route: HeaderRoute) -> str:
    value = route.value
    shown = (
        value.exact if value.exact is not None else value.prefix if value.prefix is not None else value.regex
    )
    how = "=" if value.exact is not None else " prefix " if value.prefix is not None else " ~ "
    return f"{route.header}{how}{shown}"


def strategy_line(rollout: Rollout) -> str:
    """One line naming the delivery strategy and its parameters."""
    spec = rollout.spec
    if spec is None:
        return "-"
    strategy = spec.strategy
    shadow = f"shadow {strategy.shadow.duration}, then " if strategy.shadow else ""
    if strategy.blue_green is not None:
        blue_green = strategy.blue_green
        preview = f", preview {_header(blue_green.preview)}" if blue_green.preview else ""
        manual = ", switch on `promote`" if strategy.promotion.mode == "manual" else ""
        return f"{shadow}blue-green (bake {blue_green.bake}{preview}{manual})"
    if strategy.experiment is not None:
        ab = strategy.experiment
        key = ab.assignment
        return (
            f"{shadow}A/B experiment on {ab.metric.name} ({ab.metric.successes} / {ab.metric.trials}); "
            f"{key.actual_percent():.1f}% of users by {key.header or 'cookie ' + str(key.cookie)}; "
            f"MDE {ab.minimum_detectable_effect:.0%}, alpha {ab.alpha:g}, power {ab.power:g}; "
            f"max {ab.max_duration}"
        )
    steps = ", ".join(f"{s.weight}%" for s in strategy.steps())
    return f"{shadow}canary ({steps})"


def switch_text(rollout: Rollout, now: datetime) -> str:
    """Blue-green: where the switch is (waiting for readiness, baking since, or done)."""
    s, spec = rollout.status, rollout.spec
    routed = s.paused_phase if s.phase == "Paused" else s.phase
    if spec is None or spec.strategy.blue_green is None:
        return "-"
    if routed in ("Pending", "Warming", "Shadow", "Preview"):
        return f"not yet: every slice switches once all {spec.replicas} {s.candidate_version} replicas are model-ready"
    if s.switched_at is None:
        return "-"
    at = s.switched_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    if routed == "Baking":
        baked = (now - s.switched_at).total_seconds()
        bake = spec.strategy.blue_green.bake
        left = max(0.0, seconds(bake) - baked)
        return (
            f"every slice on {s.candidate_version} since {at}; baking {baked:.0f}s of {bake} "
            f"(at least {left:.0f}s left); relative guards compare with {s.stable_version}'s window before it"
        )
    return f"switched at {at}"


def qa_text(rollout: Rollout) -> str | None:
    """The QA override route, when the spec declares one."""
    spec, s = rollout.spec, rollout.status
    if spec is None or spec.strategy.qa_override is None:
        return None
    routed = s.paused_phase if s.phase == "Paused" else s.phase
    header = _header(spec.strategy.qa_override)
    if routed in CARRIES_CANDIDATE and s.candidate_version:
        return f"{header} -> {s.candidate_version} (not analysed)"
    return f"{header} (active while a model-ready candidate is previewed, mirrored or serving)"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.1%}"


def experiment_lines(rollout: Rollout) -> list[tuple[str, str]]:
    """A/B: the planned sample and progress, the effect overall and per slice, the warning and the outcome."""
    result = rollout.status.experiment
    if rollout.spec is None or rollout.spec.strategy.experiment is None:
        return []
    if result is None:
        return [("Experiment", "not started")]
    planned = result.planned_trials_per_arm
    rows = [
        (
            "Sample",
            f"{planned if planned is not None else 'unknown (no baseline yet)'} trials per arm planned; cap "
            f"{result.cap_trials_per_arm or '-'}; progress {result.progress:.0%}",
        )
    ]
    for effect in [*([result.overall] if result.overall else []), *result.slices]:
        rows.append(
            (
                f"Effect {effect.slice}",
                f"{_pct(effect.effect)} [{_pct(effect.low)}, {_pct(effect.high)}] {effect.direction} "
                f"({effect.candidate_trials} vs {effect.stable_trials} trials)",
            )
        )
    if result.warning:
        rows.append(("Warning", result.warning))
    if result.outcome:
        rows.append(("Outcome", result.outcome))
    return rows
