"""What each phase does on a tick: Pending checks, Warming waits, Shadow and Canary judge, Promoting switches."""

from __future__ import annotations

from modelrollout.api.common import seconds
from modelrollout.api.status import JUDGED, VersionRecord
from modelrollout.plan.capacity import capacity_weight
from modelrollout.plan.judging import all_passed_for, judge
from modelrollout.plan.safety import check_rollback_safety
from modelrollout.plan.tick import Tick
from modelrollout.plan.transitions import begin_delivery, enter_step, promote_now, rollback


def _block(t: Tick, reason: str, message: str) -> None:
    """Blocked, with one decision per distinct cause (a refusal repeated every tick is not news)."""
    s = t.status
    if s.phase != "Blocked" or s.message != message:
        t.transition("Blocked", reason, message)


def _blocked_by_safety(t: Tick) -> bool:
    s, spec = t.status, t.spec
    if s.stable is None:
        return False
    safety = check_rollback_safety(s.stable.serving_schema, spec.model.serving_schema)
    t.safety = safety
    if safety.safe or spec.rollback.rollback_safety != "block":
        return False
    _block(
        t,
        "RollbackUnsafe",
        f"rolling back from {s.candidate_version} to {s.stable_version} would be unsafe: "
        + "; ".join(safety.reasons),
    )
    return True


def _blocked_by_gates(t: Tick) -> bool:
    if not t.spec.gates:
        return False
    if t.obs.gates is None:
        return True  # the controller fetches gate results first; nothing moves without them
    denied = [g for g in t.obs.gates if not g.allowed]
    if denied:
        message = "; ".join(f"gate {g.name} refused {t.status.candidate_version}: {g.reason}" for g in denied)
        _block(t, "GateRefused", message)
    return bool(denied)


def pending(t: Tick) -> None:
    """Rollback safety, gates and a renderable template, in that order; then the candidate is deployed."""
    s, spec = t.status, t.spec
    candidate = s.candidate_version
    assert candidate is not None
    if _blocked_by_safety(t) or _blocked_by_gates(t):
        return
    printed = t.obs.candidate_fingerprint
    if printed is None:
        return  # not observed this tick: nothing is deployed unchecked
    if isinstance(printed, str):  # the template cannot make a pod: nothing is deployed until it is fixed
        _block(t, "InvalidTemplate", f"invalid template: {printed}")
        return
    s.candidate = VersionRecord(
        version=candidate, uri=spec.model.uri, serving_schema=spec.model.serving_schema, fingerprint=printed
    )
    s.candidate_scale_down_at = None
    t.transition(
        "Warming",
        "Deploying",
        f"deploying {candidate} ({spec.replicas} replicas); waiting for "
        f"{spec.readiness.min_ready_replicas} model-ready replicas",
    )
    warming(t)


def warming(t: Tick) -> None:
    """Waits for minReadyReplicas model-ready candidate replicas, then shadow (or the first canary step)."""
    s, spec = t.status, t.spec
    ready = t.ready(s.candidate_version)
    if ready < spec.readiness.min_ready_replicas:
        check_load_timeout(t, ready, spec.readiness.min_ready_replicas)
        return
    if s.stable_version is None and t.obs.routes_refused:
        s.message = f"{s.candidate_version} is model-ready; it cannot be routed: {t.obs.routes_refused}"
    elif s.stable_version is None:
        promote_now(t, "InitialDeploy")
    elif spec.strategy.shadow is not None:
        s.mirror_percent = spec.strategy.shadow.mirror_percent
        s.step_since = t.now
        t.new_stage()
        t.transition(
            "Shadow",
            "ShadowStarted",
            f"{s.candidate_version} has {ready} model-ready replicas; mirroring "
            f"{s.mirror_percent:g}% of every slice to it (no user sees its answers)",
        )
    else:
        begin_delivery(t, None, f"{s.candidate_version} has {ready} model-ready replicas")


def check_load_timeout(t: Tick, ready: int, required: int) -> None:
    """Rolls back (or fails a first deploy) when `required` replicas are not model-ready within loadTimeout
    of the phase's start."""
    s, spec = t.status, t.spec
    budget = seconds(spec.readiness.load_timeout)
    if s.phase_since is None or (t.now - s.phase_since).total_seconds() <= budget:
        return
    message = (
        f"{s.candidate_version} had {ready} of {required} required model-ready "
        f"replicas after loadTimeout {spec.readiness.load_timeout}"
    )
    if s.stable_version is None:
        t.transition("Failed", "CandidateNotReady", message)
    else:
        rollback(t, "CandidateNotReady", message)


def shadow(t: Tick) -> None:
    """Judges the mirrored traffic; after `duration` of every slice passing, the canary starts."""
    strategy = t.spec.strategy.shadow
    if judge(t) or strategy is None:
        return
    if all_passed_for(t, seconds(strategy.duration)):
        begin_delivery(t, "ShadowPassed", f"every slice passed in shadow for {strategy.duration}")


def _follow_capacity(t: Tick, wanted: int) -> int:
    """The step's weight as capacity allows now; a change is a decision (hold resets the pause)."""
    s = t.status
    applied = t.capped(wanted)
    if applied == s.canary_weight:
        return applied
    s.canary_weight = applied
    if applied < wanted:
        t.reset_passing()
        t.transition(
            "Canary",
            "CapacityHold",
            f"step {s.step}: holding at {applied}% of every slice: {t.ready(s.candidate_version)} of "
            f"{t.spec.replicas} candidate replicas are model-ready",
        )
    else:
        t.transition("Canary", "CapacityRestored", f"step {s.step}: {applied}% of every slice")
    return applied


def canary(t: Tick) -> None:
    """Judges the step; once every slice has passed for the pause at full weight, the next step (or promotion)."""
    s, spec = t.status, t.spec
    if judge(t):
        return
    steps = spec.strategy.steps()
    step = steps[s.step - 1]
    if _follow_capacity(t, step.weight) < step.weight or not all_passed_for(t, seconds(step.pause)):
        return
    if s.step < len(steps):
        enter_step(
            t, s.step + 1, "StepPassed", f"every slice passed step {s.step} ({step.weight}%) for {step.pause}"
        )
    elif spec.strategy.promotion.mode == "auto":
        t.transition(
            "Promoting",
            "StepPassed",
            f"every slice passed the last step ({step.weight}%) for {step.pause}; promoting {s.candidate_version}",
        )
    else:
        waiting = (
            f"every slice passed the last step ({step.weight}%); waiting for "
            f"`kubectl modelrollout promote` to promote {s.candidate_version}"
        )
        if s.message != waiting:
            t.transition("Canary", "AwaitingPromotion", waiting)


def promoting(t: Tick) -> None:
    """Switches every slice once the candidate can carry all of it (spec.replicas model-ready)."""
    s, spec = t.status, t.spec
    ready = t.ready(s.candidate_version)
    if capacity_weight(spec, ready) >= 100:
        promote_now(t, "Promoted")
        return
    s.message = (
        f"promoting {s.candidate_version}: waiting for {spec.replicas} model-ready replicas (have {ready})"
    )


def paused(t: Tick) -> None:
    if t.status.paused_phase in JUDGED:
        judge(t)  # guards keep watching while paused: a failure still rolls back
