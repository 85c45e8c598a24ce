"""The moves between phases that several parts of the state machine make: start, step, promote, roll back."""

from __future__ import annotations

from datetime import timedelta

from modelrollout.api.common import seconds
from modelrollout.api.status import GuardVerdict, SliceStatus, VersionRecord
from modelrollout.plan.tick import Tick


def start(t: Tick, version: str, reason: str = "NewVersion") -> None:
    """A rollout of `version` from the current stable version begins in Pending (gates and safety first)."""
    s = t.status
    s.candidate_version = version
    s.candidate = None
    s.step = 0
    s.canary_weight = 0
    s.mirror_percent = 0.0
    s.switched_at = None
    s.experiment = None
    s.slices = []
    s.failing_slices = 0
    s.inconclusive_count = 0
    s.paused_phase = None
    s.last_analysis = None
    what = (
        f"rollout of {version} from stable {s.stable_version}"
        if s.stable_version
        else f"initial deploy of {version}"
    )
    if reason == "Retry":
        what = f"retry requested: {what}"
    t.transition("Pending", reason, f"{what}: checking gates and rollback safety")


def supersede(t: Tick, version: str) -> None:
    """The spec names a third version mid-rollout: drop the candidate at once and start again from stable."""
    s = t.status
    t.transition(
        "Pending",
        "Superseded",
        f"spec.model.version changed to {version} during the rollout of {s.candidate_version}; "
        f"restarting from stable {s.stable_version}",
    )
    s.candidate_scale_down_at = None  # the superseded candidate is removed now, not kept


def undo(t: Tick, version: str) -> None:
    """Back to the previous version in one switch: it served every slice minutes ago and is still warm."""
    s = t.status
    assert s.previous is not None
    s.candidate_version, s.candidate = version, s.previous
    s.candidate_scale_down_at = None
    s.step, s.canary_weight, s.mirror_percent = 0, 0, 0.0
    s.slices, s.failing_slices, s.inconclusive_count = [], 0, 0
    t.transition(
        "Promoting",
        "Undo",
        f"spec.model.version set back to the previous version {version}, still warm: "
        f"switching every slice back to it without a canary",
    )


def revert_to_stable(t: Tick) -> None:
    """A person set the version back to stable: stop at once; the candidate is removed, not kept."""
    s = t.status
    candidate = s.candidate_version
    s.candidate_version, s.candidate = None, None
    s.candidate_scale_down_at = None
    s.canary_weight, s.mirror_percent, s.step = 0, 0.0, 0
    s.paused_phase = None
    s.failing_slices = 0
    t.transition(
        "Succeeded",
        "VersionReverted",
        f"spec.model.version set back to stable {s.stable_version}: rollout of {candidate} stopped; "
        f"{s.stable_version} serves 100% of every slice",
    )


def rollback(t: Tick, reason: str, message: str, evidence: list[GuardVerdict] | None = None) -> None:
    """Every slice back on stable (weights 0, no mirror); the candidate stays up for scaleDownDelay."""
    s = t.status
    s.canary_weight = 0
    s.mirror_percent = 0.0
    s.paused_phase = None
    s.candidate_scale_down_at = t.now + timedelta(seconds=seconds(t.spec.rollback.scale_down_delay))
    for item in s.slices:
        item.canary_weight = 0
    t.transition("RolledBack", reason, f"{message}; rolled back to {s.stable_version}", evidence)


def begin_delivery(t: Tick, reason: str | None, why: str) -> None:
    """Users start meeting the candidate: the first canary step, or the blue-green preview before the switch.
    Without a `reason`, the decision is CanaryStarted or PreviewStarted."""
    if t.spec.strategy.blue_green is not None:
        enter_preview(t, reason or "PreviewStarted", why)
    elif t.spec.strategy.experiment is not None:
        enter_experiment(t, reason or "ExperimentStarted", why)
    else:
        enter_step(t, 1, reason or "CanaryStarted", why)


def enter_preview(t: Tick, reason: str, why: str) -> None:
    """Blue-green: the candidate runs at full size beside stable; only preview and QA requests reach it."""
    s, spec = t.status, t.spec
    s.step, s.canary_weight, s.mirror_percent = 0, 0, 0.0
    s.step_since = t.now
    s.switched_at = None
    t.reset_passing()
    blue_green = spec.strategy.blue_green
    preview = blue_green.preview if blue_green else None
    route = (
        f"requests with {preview.header} reach it (not analysed)"
        if preview is not None
        else "no user reaches it"
    )
    t.transition(
        "Preview",
        reason,
        f"{why}; {s.candidate_version} scales to {spec.replicas} replicas beside {s.stable_version}; {route}; "
        f"every slice switches once all {spec.replicas} replicas are model-ready",
    )


def enter_experiment(t: Tick, reason: str, why: str) -> None:
    """A/B: users whose sticky key falls in the candidate's buckets reach it, on every slice, until a verdict."""
    s, experiment = t.status, t.spec.strategy.experiment
    assert experiment is not None
    s.step, s.canary_weight, s.mirror_percent = 0, 0, 0.0
    s.step_since = t.now
    s.experiment = None
    t.reset_passing()
    key = experiment.assignment
    t.transition(
        "Experiment",
        reason,
        f"{why}; users whose {key.header or key.cookie} ends in the candidate's buckets "
        f"({key.actual_percent():.1f}% of uniform ids) reach {s.candidate_version} on every slice; "
        f"{experiment.metric.name} is compared with an anytime-valid test at alpha {experiment.alpha:g}",
    )


def switch(t: Tick, reason: str, why: str) -> None:
    """Blue-green: every slice to the candidate in one write; the bake is judged against stable's window before."""
    s, spec = t.status, t.spec
    s.canary_weight = 100
    s.mirror_percent = 0.0
    s.switched_at = t.now
    s.step_since = t.now
    t.reset_passing()
    bake = spec.strategy.blue_green.bake if spec.strategy.blue_green else "0s"
    t.transition(
        "Baking",
        reason,
        f"{why}; every slice switched to {s.candidate_version} in one write; baking for {bake} with "
        f"{s.stable_version} still at {spec.replicas} replicas (relative guards compare with its window "
        "before the switch)",
    )


def enter_step(t: Tick, step: int, reason: str, why: str) -> None:
    """Canary step `step` (1-based) begins, capped by capacity; past the last step, promotion begins."""
    s, steps = t.status, t.spec.strategy.steps()
    if step > len(steps):
        t.transition("Promoting", reason, f"{why}; promoting {s.candidate_version}")
        return
    s.step = step
    s.step_since = t.now
    s.mirror_percent = 0.0
    t.new_stage()
    weight = steps[step - 1].weight
    s.canary_weight = t.capped(weight)
    held = (
        "" if s.canary_weight == weight else f" (held at {s.canary_weight}% until candidate capacity allows)"
    )
    t.transition(
        "Canary",
        reason,
        f"{why}; step {step}/{len(steps)}: {weight}% of every slice to {s.candidate_version}{held}",
    )


def promote_now(t: Tick, reason: str) -> None:
    """The candidate becomes stable and serves every slice; the old stable stays warm for keepPreviousWarm."""
    s, spec = t.status, t.spec
    candidate = s.candidate or VersionRecord(
        version=s.candidate_version or spec.model.version,
        uri=spec.model.uri,
        serving_schema=spec.model.serving_schema,
    )
    previous = s.stable
    s.previous, s.previous_version = previous, previous.version if previous else None
    s.previous_warm_until = (
        t.now + timedelta(seconds=seconds(spec.rollback.keep_previous_warm)) if previous else None
    )
    s.stable, s.stable_version = candidate, candidate.version
    s.candidate, s.candidate_version = None, None
    s.canary_weight, s.mirror_percent, s.step = 0, 0.0, 0
    s.switched_at = None
    s.failing_slices = 0
    s.slices = [SliceStatus(name=item.name, verdict=item.verdict, samples=item.samples) for item in s.slices]
    kept = f"; {previous.version} kept warm for {spec.rollback.keep_previous_warm}" if previous else ""
    t.transition("Succeeded", reason, f"{candidate.version} is stable and serves 100% of every slice{kept}")
