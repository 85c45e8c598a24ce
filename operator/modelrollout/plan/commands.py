"""Manual commands (abort, retry, promote, pause and resume), each acted on once per command id."""

from __future__ import annotations

from modelrollout.api.status import FAILED, IN_FLIGHT, PAUSABLE
from modelrollout.plan.tick import Tick
from modelrollout.plan.transitions import begin_delivery, enter_step, promote_now, rollback, start, switch


def apply_commands(t: Tick) -> None:
    """Acts on the commands read from the resource's annotations, before the phase's own work."""
    s, commands = t.status, t.obs.commands
    if commands.abort and commands.abort != s.acknowledged.abort:
        s.acknowledged.abort = commands.abort
        _abort(t)
    if commands.retry and commands.retry != s.acknowledged.retry:
        s.acknowledged.retry = commands.retry
        _retry(t)
    # Resume before promote: both read in one tick (Resume then Promote clicked quickly) must both act.
    if not commands.paused and s.phase == "Paused" and s.paused_phase is not None:
        resumed = s.paused_phase
        s.paused_phase = None
        s.step_since = t.now
        t.reset_passing()
        t.transition(resumed, "Resumed", f"resumed in {resumed}; the current step's pause starts again")
    if commands.promote and commands.promote != s.acknowledged.promote:
        s.acknowledged.promote = commands.promote
        _promote(t, full=commands.promote_full)
    if commands.paused and s.phase in PAUSABLE:
        s.paused_phase = s.phase
        t.transition("Paused", "Paused", f"paused by a person in {s.phase}; traffic held as it is")


def _abort(t: Tick) -> None:
    s = t.status
    if s.phase in IN_FLIGHT and s.stable_version is not None:
        rollback(t, "Aborted", f"rollout of {s.candidate_version} aborted by a person")
    else:
        t.note("AbortIgnored", f"abort ignored: no rollout in progress (phase {s.phase})")


def _retry(t: Tick) -> None:
    s = t.status
    retriable = s.phase in FAILED and s.candidate_version is not None
    if retriable and s.candidate_version == t.spec.model.version:
        s.candidate_scale_down_at = None
        start(t, s.candidate_version, reason="Retry")
    else:
        t.note("RetryIgnored", f"retry ignored: nothing to retry in phase {s.phase}")


def _promote(t: Tick, full: bool) -> None:
    s = t.status
    steps = t.spec.strategy.steps()
    if s.phase == "Shadow" and not full:
        begin_delivery(t, "ManualPromotion", "promoted by a person: shadow skipped")
    elif s.phase == "Preview" and not full:
        _approve_switch(t)
    elif s.phase == "Baking":
        promote_now(t, "ManualPromotion")
    elif s.phase in ("Shadow", "Canary", "Preview") and (full or s.step >= len(steps)):
        t.transition(
            "Promoting", "ManualPromotion", f"promotion of {s.candidate_version} requested by a person"
        )
    elif s.phase == "Canary":
        enter_step(t, s.step + 1, "ManualPromotion", f"promoted by a person past step {s.step}")
    else:
        t.note("PromoteIgnored", f"promote ignored in phase {s.phase}")


def _approve_switch(t: Tick) -> None:
    """A person's go for the blue-green switch: at once when every replica is model-ready, never before."""
    s, spec = t.status, t.spec
    ready = t.ready(s.candidate_version)
    if ready < spec.replicas:
        t.note(
            "PromoteIgnored",
            f"promote ignored: {s.candidate_version} has {ready} of {spec.replicas} replicas model-ready and "
            "the switch needs all of them; promote again once they are",
        )
        return
    switch(t, "ManualPromotion", "switch approved by a person")
