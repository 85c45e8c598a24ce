"""The working state of one planning tick, and the small moves every part of the state machine makes."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from modelrollout.api.spec import ModelRolloutSpec
from modelrollout.api.status import (
    EVIDENCE_LIMIT,
    FAILED,
    HISTORY_LIMIT,
    HISTORY_MAX_BYTES,
    Decision,
    GuardVerdict,
    ModelRolloutStatus,
    Phase,
)
from modelrollout.plan.actions import Action, Event, Notify
from modelrollout.plan.capacity import capped
from modelrollout.plan.observations import Observations
from modelrollout.plan.safety import SafetyResult

_SEVERITY = {"Fail": 0, "Inconclusive": 1, "Pass": 2}


def _trimmed(decision: Decision) -> Decision:
    """At most EVIDENCE_LIMIT verdicts, failing ones first."""
    if len(decision.evidence) <= EVIDENCE_LIMIT:
        return decision
    worst = sorted(decision.evidence, key=lambda verdict: _SEVERITY[verdict.verdict])
    return decision.model_copy(update={"evidence": worst[:EVIDENCE_LIMIT]})


def bounded_history(history: list[Decision]) -> list[Decision]:
    """The newest entries that fit HISTORY_LIMIT entries and HISTORY_MAX_BYTES of JSON (the newest always),
    each with at most EVIDENCE_LIMIT verdicts."""
    kept: list[Decision] = []
    size = 0
    for decision in map(_trimmed, reversed(history[-HISTORY_LIMIT:])):
        size += len(decision.model_dump_json(by_alias=True, exclude_none=True)) + 1
        if kept and size > HISTORY_MAX_BYTES:
            break
        kept.append(decision)
    return kept[::-1]


@dataclass
class Tick:
    """Spec and observations (read-only), the status being rewritten, and the actions asked for so far."""

    spec: ModelRolloutSpec
    status: ModelRolloutStatus
    obs: Observations
    actions: list[Action] = field(default_factory=list)
    safety: SafetyResult | None = None
    """Whether rolling back would be safe, as checked this tick (None when not checked this tick)."""

    @property
    def now(self) -> datetime:
        return self.obs.now

    def ready(self, version: str | None) -> int:
        """Model-ready replicas of a version's Deployment (0 when it has none)."""
        workload = self.obs.workloads.get(version or "")
        return workload.ready_replicas if workload else 0

    def capped(self, wanted: int) -> int:
        """`wanted` percent to the candidate, capped by its model-ready capacity right now."""
        return capped(self.spec, wanted, self.ready(self.status.candidate_version))

    def transition(
        self, phase: Phase, reason: str, message: str, evidence: list[GuardVerdict] | None = None
    ) -> None:
        """Enters (or stays in) `phase`: message, a history entry, an Event and a notification."""
        s = self.status
        if s.phase != phase:
            s.phase_since = self.now
        s.phase = phase
        s.message = message
        decision = Decision(
            time=self.now,
            phase=phase,
            reason=reason,
            message=message,
            step=s.step or None,
            weight=s.canary_weight,
            evidence=evidence or [],
        )
        s.history = bounded_history([*s.history, decision])
        kind: Literal["Normal", "Warning"] = "Warning" if phase in FAILED else "Normal"
        self.actions.append(Event(type=kind, reason=reason, message=message))
        self.actions.append(Notify(reason=reason, message=message, evidence=evidence or []))

    def warn(self, reason: str, message: str) -> None:
        """Something a person must look at, without a change of phase: message, Warning Event, notification."""
        self.status.message = message
        self.actions.append(Event(type="Warning", reason=reason, message=message))
        self.actions.append(Notify(reason=reason, message=message, evidence=[]))

    def note(self, reason: str, message: str) -> None:
        """An Event without a decision (a command that was ignored, say)."""
        self.actions.append(Event(type="Normal", reason=reason, message=message))

    def reset_passing(self) -> None:
        """Every slice must pass afresh (a new step, a resume, a capacity hold)."""
        for item in self.status.slices:
            item.passing_since = None

    def new_stage(self) -> None:
        """Shadow or a canary step begins: passes, failures and inconclusive evaluations count afresh."""
        self.reset_passing()
        self.status.inconclusive_count = 0
        self.status.conclusive_at = None
        self.status.missing_data_overdue = False
        for item in self.status.slices:
            item.guards = [g.model_copy(update={"failures": 0}) for g in item.guards]
