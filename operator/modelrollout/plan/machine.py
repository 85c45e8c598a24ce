"""The rollout state machine: (spec, status, observations) -> (new status, actions). Pure and deterministic.

Every tick recomputes the desired routing and workloads from spec + status + observations, so a restarted
operator continues from the status alone, and a tick that changes nothing asks for nothing new.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from modelrollout.analysis.model import SliceVerdict
from modelrollout.api.common import seconds
from modelrollout.api.spec import ModelRolloutSpec
from modelrollout.api.status import (
    HISTORY_LIMIT,
    Decision,
    GuardVerdict,
    ModelRolloutStatus,
    Phase,
    Samples,
    SliceStatus,
    VersionRecord,
)
from modelrollout.plan.conditions import update_conditions
from modelrollout.plan.model import (
    Action,
    EnsureWorkload,
    Event,
    Needs,
    Notify,
    Observations,
    Plan,
    RemoveWorkload,
    SetRoutes,
)
from modelrollout.plan.safety import check_rollback_safety
from modelrollout.workloads.render import fingerprint

IN_FLIGHT: frozenset[str] = frozenset({"Pending", "Warming", "Shadow", "Canary", "Promoting", "Paused"})
JUDGED: frozenset[str] = frozenset({"Shadow", "Canary"})
PAUSABLE: frozenset[str] = frozenset({"Warming", "Shadow", "Canary", "Promoting"})
WARNING_PHASES: frozenset[str] = frozenset({"RolledBack", "Blocked", "Failed"})


def judged_phase(status: ModelRolloutStatus) -> str | None:
    """The phase whose guards apply now ('shadow' or 'canary'), also while paused in it; None when nothing is judged."""
    phase = status.paused_phase if status.phase == "Paused" else status.phase
    return phase.lower() if phase in JUDGED else None


def needs(spec: ModelRolloutSpec, status: ModelRolloutStatus, now: datetime) -> Needs:
    """What the controller must fetch before `plan` can decide this tick."""
    desired = spec.model.version
    starting = status.phase in (None, "Pending", "Blocked") or desired not in (
        status.stable_version,
        status.candidate_version,
    )
    analysis_due = judged_phase(status) is not None and (
        status.last_analysis is None
        or (now - status.last_analysis).total_seconds() >= 0.9 * seconds(spec.analysis.interval)
    )
    return Needs(gates=bool(spec.gates) and starting, analysis=analysis_due)


def capacity_weight(spec: ModelRolloutSpec, ready: int) -> int:
    """The largest candidate share the model-ready replicas can carry (stable runs spec.replicas)."""
    if ready < spec.readiness.min_ready_replicas:
        return 0
    return min(100, (100 * ready) // spec.replicas)


def plan(spec: ModelRolloutSpec, status: ModelRolloutStatus, observations: Observations) -> Plan:
    tick = _Tick(spec, status.model_copy(deep=True), observations)
    tick.run()
    return Plan(status=tick.status, actions=tick.actions)


class _Tick:
    def __init__(self, spec: ModelRolloutSpec, status: ModelRolloutStatus, obs: Observations) -> None:
        self.spec = spec
        self.status = status
        self.obs = obs
        self.now = obs.now
        self.actions: list[Action] = []
        self.safety_reasons: list[str] | None = None

    # Entry ---------------------------------------------------------------------------------------------------
    def run(self) -> None:
        s = self.status
        s.observed_generation = self.obs.generation
        desired = self.spec.model.version
        if s.phase is None:
            self._start(desired)
        elif desired == s.stable_version and s.candidate_version is not None:
            self._revert_to_stable()
        elif desired not in (s.stable_version, s.candidate_version) and self._warm_previous(desired):
            self._undo(desired)
        elif desired not in (s.stable_version, s.candidate_version):
            if s.phase in IN_FLIGHT and s.candidate_version is not None:
                self._transition(
                    "Pending",
                    "Superseded",
                    f"spec.model.version changed to {desired} during the rollout of {s.candidate_version}; "
                    f"restarting from stable {s.stable_version}",
                )
                s.candidate_scale_down_at = None  # the superseded candidate is removed now, not kept
            self._start(desired)
        self._commands()
        handler = {
            "Pending": self._pending,
            "Blocked": self._pending,
            "Warming": self._warming,
            "Shadow": self._shadow,
            "Canary": self._canary,
            "Promoting": self._promoting,
            "Paused": self._paused,
        }.get(s.phase or "")
        if handler is not None:
            handler()
        self._workloads()
        self._routes()
        update_conditions(s, self.spec, self.now, self.obs.generation, self.safety_reasons)

    # Transitions ---------------------------------------------------------------------------------------------
    def _transition(
        self,
        phase: Phase,
        reason: str,
        message: str,
        evidence: list[GuardVerdict] | None = None,
    ) -> None:
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
        s.history = [*s.history, decision][-HISTORY_LIMIT:]
        kind: Literal["Normal", "Warning"] = "Warning" if phase in WARNING_PHASES else "Normal"
        self.actions.append(Event(type=kind, reason=reason, message=message))
        self.actions.append(Notify(reason=reason, message=message, evidence=evidence or []))

    def _start(self, version: str, reason: str = "NewVersion") -> None:
        s = self.status
        s.candidate_version = version
        s.candidate = None
        s.step = 0
        s.canary_weight = 0
        s.mirror_percent = 0.0
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
        self._transition("Pending", reason, f"{what}: checking gates and rollback safety")

    def _warm_previous(self, desired: str) -> bool:
        """The spec asks for the previous stable version while it is still up, model-ready and in its window."""
        s = self.status
        return (
            s.phase == "Succeeded"
            and desired == s.previous_version
            and s.previous is not None
            and s.previous_warm_until is not None
            and self.now < s.previous_warm_until
            and self._ready(desired) >= self.spec.readiness.min_ready_replicas
        )

    def _undo(self, version: str) -> None:
        """Back to the previous version in one switch: it served every slice minutes ago and is still warm."""
        s = self.status
        assert s.previous is not None
        s.candidate_version, s.candidate = version, s.previous
        s.candidate_scale_down_at = None
        s.step, s.canary_weight, s.mirror_percent = 0, 0, 0.0
        s.slices, s.failing_slices, s.inconclusive_count = [], 0, 0
        self._transition(
            "Promoting",
            "Undo",
            f"spec.model.version set back to the previous version {version}, still warm: "
            f"switching every slice back to it without a canary",
        )

    def _revert_to_stable(self) -> None:
        """A person set the version back to stable: stop at once; the candidate is removed, not kept."""
        s = self.status
        candidate = s.candidate_version
        s.candidate_version, s.candidate = None, None
        s.candidate_scale_down_at = None
        s.canary_weight, s.mirror_percent, s.step = 0, 0.0, 0
        s.paused_phase = None
        s.failing_slices = 0
        self._transition(
            "Succeeded",
            "VersionReverted",
            f"spec.model.version set back to stable {s.stable_version}: rollout of {candidate} stopped; "
            f"{s.stable_version} serves 100% of every slice",
        )

    def _rollback(self, reason: str, message: str, evidence: list[GuardVerdict] | None = None) -> None:
        s = self.status
        s.canary_weight = 0
        s.mirror_percent = 0.0
        s.paused_phase = None
        s.candidate_scale_down_at = self.now + timedelta(seconds=seconds(self.spec.rollback.scale_down_delay))
        for item in s.slices:
            item.canary_weight = 0
        self._transition("RolledBack", reason, f"{message}; rolled back to {s.stable_version}", evidence)

    # Manual commands -------------------------------------------------------------------------------------------
    def _commands(self) -> None:
        s, commands = self.status, self.obs.commands
        if commands.abort and commands.abort != s.acknowledged.abort:
            s.acknowledged.abort = commands.abort
            if s.phase in IN_FLIGHT and s.stable_version is not None:
                self._rollback("Aborted", f"rollout of {s.candidate_version} aborted by a person")
            else:
                self._note("AbortIgnored", f"abort ignored: no rollout in progress (phase {s.phase})")
        if commands.retry and commands.retry != s.acknowledged.retry:
            s.acknowledged.retry = commands.retry
            retriable = s.phase in ("RolledBack", "Blocked", "Failed") and s.candidate_version is not None
            if retriable and s.candidate_version == self.spec.model.version:
                s.candidate_scale_down_at = None
                self._start(s.candidate_version, reason="Retry")
            else:
                self._note("RetryIgnored", f"retry ignored: nothing to retry in phase {s.phase}")
        if commands.promote and commands.promote != s.acknowledged.promote:
            s.acknowledged.promote = commands.promote
            self._manual_promote(full=commands.promote_full)
        if commands.paused and s.phase in PAUSABLE:
            s.paused_phase = s.phase
            self._transition("Paused", "Paused", f"paused by a person in {s.phase}; traffic held as it is")
        elif not commands.paused and s.phase == "Paused" and s.paused_phase is not None:
            resumed = s.paused_phase
            s.paused_phase = None
            s.step_since = self.now
            self._reset_passing()
            self._transition(
                resumed, "Resumed", f"resumed in {resumed}; the current step's pause starts again"
            )

    def _manual_promote(self, full: bool) -> None:
        s = self.status
        steps = self.spec.strategy.canary.steps
        if s.phase == "Shadow" and not full:
            self._enter_step(1, "ManualPromotion", "promoted by a person: shadow skipped")
        elif s.phase in ("Shadow", "Canary") and (full or s.step >= len(steps)):
            self._transition(
                "Promoting", "ManualPromotion", f"promotion of {s.candidate_version} requested by a person"
            )
        elif s.phase == "Canary":
            self._enter_step(s.step + 1, "ManualPromotion", f"promoted by a person past step {s.step}")
        else:
            self._note("PromoteIgnored", f"promote ignored in phase {s.phase}")

    def _note(self, reason: str, message: str) -> None:
        self.actions.append(Event(type="Normal", reason=reason, message=message))

    # Phases --------------------------------------------------------------------------------------------------
    def _pending(self) -> None:
        s, spec = self.status, self.spec
        candidate = s.candidate_version
        assert candidate is not None
        if s.stable is not None:
            safety = check_rollback_safety(s.stable.serving_schema, spec.model.serving_schema)
            self.safety_reasons = safety.reasons if not safety.safe else []
            if not safety.safe and spec.rollback.rollback_safety == "block":
                if s.phase != "Blocked" or s.message != self._blocked_message(safety.reasons):
                    self._transition("Blocked", "RollbackUnsafe", self._blocked_message(safety.reasons))
                return
        if spec.gates:
            if self.obs.gates is None:
                return  # the controller fetches gate results first; nothing moves without them
            denied = [g for g in self.obs.gates if not g.allowed]
            if denied:
                message = "; ".join(f"gate {g.name} refused {candidate}: {g.reason}" for g in denied)
                if s.phase != "Blocked" or s.message != message:
                    self._transition("Blocked", "GateRefused", message)
                return
        try:
            printed = fingerprint(spec, candidate, spec.model.uri)
        except ValueError as error:  # the template cannot make a pod: nothing is deployed until it is fixed
            if s.phase != "Blocked" or s.message != f"invalid template: {error}":
                self._transition("Blocked", "InvalidTemplate", f"invalid template: {error}")
            return
        s.candidate = VersionRecord(
            version=candidate,
            uri=spec.model.uri,
            serving_schema=spec.model.serving_schema,
            fingerprint=printed,
        )
        s.candidate_scale_down_at = None
        self._transition(
            "Warming",
            "Deploying",
            f"deploying {candidate} ({spec.replicas} replicas); waiting for "
            f"{spec.readiness.min_ready_replicas} model-ready replicas",
        )
        self._warming()

    def _blocked_message(self, reasons: list[str]) -> str:
        s = self.status
        return f"rolling back from {s.candidate_version} to {s.stable_version} would be unsafe: " + "; ".join(
            reasons
        )

    def _ready(self, version: str | None) -> int:
        workload = self.obs.workloads.get(version or "")
        return workload.ready_replicas if workload else 0

    def _warming(self) -> None:
        s, spec = self.status, self.spec
        ready = self._ready(s.candidate_version)
        minimum = spec.readiness.min_ready_replicas
        if s.stable_version is None:
            if ready >= minimum:
                self._promote_now("InitialDeploy")
            else:
                self._check_load_timeout(ready)
            return
        if ready < minimum:
            self._check_load_timeout(ready)
            return
        if spec.strategy.shadow is not None:
            s.mirror_percent = spec.strategy.shadow.mirror_percent
            s.step_since = self.now
            self._reset_passing()
            self._transition(
                "Shadow",
                "ShadowStarted",
                f"{s.candidate_version} has {ready} model-ready replicas; mirroring "
                f"{s.mirror_percent:g}% of every slice to it (no user sees its answers)",
            )
        else:
            self._enter_step(1, "CanaryStarted", f"{s.candidate_version} has {ready} model-ready replicas")

    def _check_load_timeout(self, ready: int) -> None:
        s, spec = self.status, self.spec
        budget = seconds(spec.readiness.load_timeout)
        if s.phase_since is not None and (self.now - s.phase_since).total_seconds() > budget:
            message = (
                f"{s.candidate_version} had {ready} of {spec.readiness.min_ready_replicas} required model-ready "
                f"replicas after loadTimeout {spec.readiness.load_timeout}"
            )
            if s.stable_version is None:
                self._transition("Failed", "CandidateNotReady", message)
            else:
                self._rollback("CandidateNotReady", message)

    def _enter_step(self, step: int, reason: str, why: str) -> None:
        s, steps = self.status, self.spec.strategy.canary.steps
        if step > len(steps):
            self._transition("Promoting", reason, f"{why}; promoting {s.candidate_version}")
            return
        s.step = step
        s.step_since = self.now
        s.mirror_percent = 0.0
        self._reset_passing()
        weight = steps[step - 1].weight
        s.canary_weight = min(weight, capacity_weight(self.spec, self._ready(s.candidate_version)))
        held = (
            ""
            if s.canary_weight == weight
            else f" (held at {s.canary_weight}% until candidate capacity allows)"
        )
        self._transition(
            "Canary",
            reason,
            f"{why}; step {step}/{len(steps)}: {weight}% of every slice to {s.candidate_version}{held}",
        )

    def _shadow(self) -> None:
        shadow = self.spec.strategy.shadow
        if self._judge() or shadow is None:
            return
        if self._all_passed_for(seconds(shadow.duration)):
            self._enter_step(1, "ShadowPassed", f"every slice passed in shadow for {shadow.duration}")

    def _canary(self) -> None:
        s, spec = self.status, self.spec
        if self._judge():
            return
        steps = spec.strategy.canary.steps
        step = steps[s.step - 1]
        capacity = capacity_weight(spec, self._ready(s.candidate_version))
        applied = min(step.weight, capacity)
        if applied != s.canary_weight:
            s.canary_weight = applied
            if applied < step.weight:
                self._reset_passing()
                self._transition(
                    "Canary",
                    "CapacityHold",
                    f"step {s.step}: holding at {applied}% of every slice: {self._ready(s.candidate_version)} of "
                    f"{spec.replicas} candidate replicas are model-ready",
                )
            else:
                self._transition("Canary", "CapacityRestored", f"step {s.step}: {applied}% of every slice")
        if applied < step.weight or not self._all_passed_for(seconds(step.pause)):
            return
        if s.step < len(steps):
            self._enter_step(
                s.step + 1,
                "StepPassed",
                f"every slice passed step {s.step} ({step.weight}%) for {step.pause}",
            )
        elif spec.strategy.promotion.mode == "auto":
            self._transition(
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
                self._transition("Canary", "AwaitingPromotion", waiting)

    def _promoting(self) -> None:
        s, spec = self.status, self.spec
        ready = self._ready(s.candidate_version)
        if capacity_weight(spec, ready) >= 100:
            self._promote_now("Promoted")
            return
        waiting = f"promoting {s.candidate_version}: waiting for {spec.replicas} model-ready replicas (have {ready})"
        if s.message != waiting:
            s.message = waiting

    def _paused(self) -> None:
        if self.status.paused_phase in JUDGED:
            self._judge()  # guards keep watching while paused: a failure still rolls back

    def _promote_now(self, reason: str) -> None:
        s, spec = self.status, self.spec
        candidate = s.candidate or VersionRecord(
            version=s.candidate_version or spec.model.version,
            uri=spec.model.uri,
            serving_schema=spec.model.serving_schema,
        )
        previous = s.stable
        s.previous, s.previous_version = previous, previous.version if previous else None
        s.previous_warm_until = (
            self.now + timedelta(seconds=seconds(spec.rollback.keep_previous_warm)) if previous else None
        )
        s.stable, s.stable_version = candidate, candidate.version
        s.candidate, s.candidate_version = None, None
        s.canary_weight, s.mirror_percent, s.step = 0, 0.0, 0
        s.failing_slices = 0
        s.slices = [
            SliceStatus(name=item.name, verdict=item.verdict, samples=item.samples) for item in s.slices
        ]
        kept = f"; {previous.version} kept warm for {spec.rollback.keep_previous_warm}" if previous else ""
        self._transition(
            "Succeeded", reason, f"{candidate.version} is stable and serves 100% of every slice{kept}"
        )

    # Judging -------------------------------------------------------------------------------------------------
    def _judge(self) -> bool:
        """Folds this tick's verdicts into status; rolls back and returns True when a guard demands it."""
        result = self.obs.analysis
        if result is None:
            return False
        s, spec = self.status, self.spec
        previous = {item.name: item for item in s.slices}
        guards = {g.name: g for g in spec.analysis.guards}
        slices: list[SliceStatus] = []
        triggered: list[tuple[str, GuardVerdict]] = []
        for name in spec.slice_names():
            verdict = result.slices.get(name) or SliceVerdict(
                name=name, verdict="Inconclusive", samples=Samples(), guards=[]
            )
            before = previous.get(name)
            counts = {g.name: g.consecutive_failures for g in before.guards} if before else {}
            judged: list[GuardVerdict] = []
            for guard in verdict.guards:
                failures = counts.get(guard.name, 0) + 1 if guard.verdict == "Fail" else 0
                judged.append(guard.model_copy(update={"consecutive_failures": failures}))
                rule = guards.get(guard.name)
                if (
                    guard.verdict == "Fail"
                    and rule is not None
                    and (rule.immediate or failures >= rule.failure_limit)
                ):
                    triggered.append((name, judged[-1]))
            since = None
            if verdict.verdict == "Pass":
                kept = before is not None and before.verdict == "Pass" and before.passing_since is not None
                since = before.passing_since if kept and before is not None else self.now
            slices.append(
                SliceStatus(
                    name=name,
                    canary_weight=s.canary_weight,
                    verdict=verdict.verdict,
                    samples=verdict.samples,
                    guards=judged,
                    passing_since=since,
                )
            )
        s.slices = slices
        s.failing_slices = sum(1 for item in slices if item.verdict == "Fail")
        s.last_analysis = result.evaluated_at
        if triggered:
            # A judge's reason starts with the guard's name ("error-ratio 0.080 > 0.0116 (1.05 x stable 0.011)").
            named = "; ".join(f"slice {name}: {g.reason or g.name}" for name, g in triggered[:3])
            more = f" (and {len(triggered) - 3} more)" if len(triggered) > 3 else ""
            self._rollback("GuardFailed", named + more, [g for _, g in triggered])
            return True
        if any(item.verdict == "Inconclusive" for item in slices):
            s.inconclusive_count += 1
            if (
                spec.analysis.on_inconclusive == "fail"
                and s.inconclusive_count >= spec.analysis.max_inconclusive
            ):
                unsure = ", ".join(item.name for item in slices if item.verdict == "Inconclusive")
                self._rollback(
                    "Inconclusive",
                    f"no conclusive verdict for {s.inconclusive_count} evaluations (slices {unsure})",
                )
                return True
        else:
            s.inconclusive_count = 0
        return False

    def _all_passed_for(self, duration: float) -> bool:
        s = self.status
        if len(s.slices) != len(self.spec.slice_names()):
            return False
        for item in s.slices:
            if item.verdict != "Pass" or item.passing_since is None:
                return False
            if s.step_since is not None and item.passing_since < s.step_since:
                return False
            if (self.now - item.passing_since).total_seconds() < duration:
                return False
        return True

    def _reset_passing(self) -> None:
        for item in self.status.slices:
            item.passing_since = None

    # Desired workloads and routes ----------------------------------------------------------------------------
    def _workloads(self) -> None:
        s, spec = self.status, self.spec
        keep: set[str] = set()
        if s.stable_version is not None:
            keep.add(s.stable_version)
            uri = s.stable.uri if s.stable else spec.model.uri
            self.actions.append(EnsureWorkload(s.stable_version, uri, spec.replicas, render=False))
        candidate = s.candidate_version
        if candidate is not None and s.phase in IN_FLIGHT and s.phase != "Pending":
            keep.add(candidate)
            self.actions.append(EnsureWorkload(candidate, spec.model.uri, spec.replicas, render=True))
        elif (
            candidate is not None
            and s.candidate_scale_down_at is not None
            and self.now < s.candidate_scale_down_at
        ):
            keep.add(candidate)  # kept as it is for inspection after a rollback
        if (
            s.previous_version is not None
            and s.previous_warm_until is not None
            and self.now < s.previous_warm_until
        ):
            keep.add(s.previous_version)
        for version in sorted(self.obs.workloads):
            if version not in keep:
                self.actions.append(RemoveWorkload(version))

    def _routes(self) -> None:
        s = self.status
        if s.stable_version is None:
            return  # nothing may route before a stable version is model-ready
        routed_phase = s.paused_phase if s.phase == "Paused" else s.phase
        carries_candidate = (
            routed_phase in ("Shadow", "Canary", "Promoting") and s.candidate_version is not None
        )
        # The last word on weights: whatever the phase (promoting, paused), never more than the
        # candidate's model-ready replicas can carry right now.
        s.canary_weight = min(s.canary_weight, capacity_weight(self.spec, self._ready(s.candidate_version)))
        weight = s.canary_weight if carries_candidate else 0
        mirror = s.mirror_percent if carries_candidate and s.mirror_percent > 0 else None
        for item in s.slices:
            item.canary_weight = weight
        self.actions.append(
            SetRoutes(
                stable=s.stable_version,
                candidate=s.candidate_version if carries_candidate else None,
                weights=dict.fromkeys(self.spec.slice_names(), weight),
                mirror_percent=mirror,
            )
        )
