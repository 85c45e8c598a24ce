"""The rollout state machine: (spec, status, observations) -> (new status, actions). Pure and deterministic.

Every tick recomputes the desired routing and workloads from spec + status + observations, so a restarted
operator continues from the status alone, and a tick that changes nothing asks for nothing new.

A tick, in order: react to a changed spec.model.version (machine), act on manual commands (commands), run
the phase's handler (phases, which judges through judging and moves through transitions), then derive the
desired workloads and routes (desired) and the conditions (conditions).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from modelrollout.api.common import seconds
from modelrollout.api.guards import AnalysisPhase
from modelrollout.api.spec import ModelRolloutSpec
from modelrollout.api.status import IN_FLIGHT, JUDGED, ModelRolloutStatus
from modelrollout.plan.actions import Plan
from modelrollout.plan.commands import apply_commands
from modelrollout.plan.conditions import update_conditions
from modelrollout.plan.desired import desired_routes, desired_workloads
from modelrollout.plan.handlers import HANDLERS
from modelrollout.plan.observations import Needs, Observations
from modelrollout.plan.tick import Tick
from modelrollout.plan.transitions import revert_to_stable, start, supersede, undo


def judged_phase(status: ModelRolloutStatus) -> AnalysisPhase | None:
    """The analysis phase whose guards apply now, also while paused in it; None when nothing is judged.

    'shadow' judges mirrored traffic; 'canary' judges the candidate serving users: a canary step or the
    blue-green bake.
    """
    phase = status.paused_phase if status.phase == "Paused" else status.phase
    if phase not in JUDGED:
        return None
    return "shadow" if phase == "Shadow" else "canary"


@dataclass(frozen=True)
class AnalysisRequest:
    """What one analysis tick must judge: which guards, from when, and where stable's values come from."""

    phase: AnalysisPhase
    since: datetime
    """Start of the current stage: sequential guards accumulate from it; histogram windows must fit in it."""
    baseline_at: datetime | None = None
    """Blue-green bake: stable serves nobody, so its values come from the window ending at the switch."""


def analysis_request(status: ModelRolloutStatus, now: datetime) -> AnalysisRequest | None:
    """The analysis this tick needs (when `needs` says it is due), or None when nothing is judged."""
    phase = judged_phase(status)
    if phase is None:
        return None
    routed = status.paused_phase if status.phase == "Paused" else status.phase
    since = status.step_since or status.phase_since or now
    return AnalysisRequest(phase, since, status.switched_at if routed == "Baking" else None)


def needs(spec: ModelRolloutSpec, status: ModelRolloutStatus, now: datetime) -> Needs:
    """What the controller must fetch before `plan` can decide this tick."""
    desired = spec.model.version
    starting = status.phase in (None, "Pending", "Blocked") or desired not in (
        status.stable_version,
        status.candidate_version,
    )
    since = (now - status.last_analysis).total_seconds() if status.last_analysis is not None else None
    # A lastAnalysis in the future was written by a clock ahead of this one: judge now rather than wait for it.
    analysis_due = judged_phase(status) is not None and (
        since is None or since < 0 or since >= 0.9 * seconds(spec.analysis.interval)
    )
    return Needs(gates=bool(spec.gates) and starting, analysis=analysis_due)


def plan(spec: ModelRolloutSpec, status: ModelRolloutStatus, observations: Observations) -> Plan:
    """One tick's decision. The input status is not modified."""
    t = Tick(spec, status.model_copy(deep=True), observations)
    t.status.observed_generation = observations.generation
    _no_future(t)
    _follow_version(t)
    apply_commands(t)
    handler = HANDLERS.get(t.status.phase or "")
    if handler is not None:
        handler(t)
    desired_workloads(t)
    desired_routes(t)
    update_conditions(t.status, spec, observations, t.safety)
    return Plan(status=t.status, actions=t.actions)


def _no_future(t: Tick) -> None:
    """Times this tick measures from that lie after `now` (written by a clock ahead of this one) count from now.

    A pause or a passing run then starts again, longer than asked and never shorter, and analysis goes on.
    """
    s, now = t.status, t.now
    for field in ("phase_since", "step_since", "last_analysis"):
        value = getattr(s, field)
        if value is not None and value > now:
            setattr(s, field, now)
    for item in s.slices:
        if item.passing_since is not None and item.passing_since > now:
            item.passing_since = now


def _follow_version(t: Tick) -> None:
    """Reacts to spec.model.version: a first deploy, a new rollout, a revert, an undo or a superseded one."""
    s, desired = t.status, t.spec.model.version
    if s.phase is None:
        start(t, desired)
    elif desired == s.stable_version and s.candidate_version is not None:
        revert_to_stable(t)
    elif desired not in (s.stable_version, s.candidate_version) and _warm_previous(t, desired):
        undo(t, desired)
    elif desired not in (s.stable_version, s.candidate_version):
        if s.phase in IN_FLIGHT and s.candidate_version is not None:
            supersede(t, desired)
        start(t, desired)


def _warm_previous(t: Tick, desired: str) -> bool:
    """The spec asks for the previous stable version while it is still up, model-ready and in its window."""
    s = t.status
    return (
        s.phase == "Succeeded"
        and desired == s.previous_version
        and s.previous is not None
        and s.previous_warm_until is not None
        and t.now < s.previous_warm_until
        and t.ready(desired) >= t.spec.readiness.min_ready_replicas
    )
