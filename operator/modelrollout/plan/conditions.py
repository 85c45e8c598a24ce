"""Every condition the operator sets, authored here and nowhere else.

Ready, Reconciling, Stalled, Progressing, Degraded, InvalidSpec, RollbackSafe and MetricsAvailable are
derived by the planner each tick (`update_conditions`); Reconciled (whether the tick's writes landed) and
InvalidSpec for a spec that does not even validate are set by the controller through `reconciled` and
`spec_refused`, so kubectl wait, kstatus (Flux, kpt), Argo CD and alerts read one vocabulary.

Reconciling and Stalled follow the kstatus convention, which kstatus reads before anything else:
Reconciling=True (InProgress) while the rollout has not ended, paused and awaiting a manual promotion
included (it ends without any change to the spec once a person acts); Stalled=True (Failed) when it ended
without the spec's version serving (RolledBack, Blocked, Failed) or the spec is refused. Ready=True means the
spec's version serves all traffic: the rollout of this generation Succeeded.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from modelrollout.analysis.results import AnalysisResult
from modelrollout.api.spec import ModelRolloutSpec
from modelrollout.api.status import (
    FAILED,
    IN_FLIGHT,
    PROGRESSING,
    Condition,
    ConditionStatus,
    ModelRolloutStatus,
)
from modelrollout.plan.observations import Observations
from modelrollout.plan.safety import SafetyResult

AWAITING_PROMOTION = "AwaitingPromotion"


def set_condition(
    status: ModelRolloutStatus,
    kind: str,
    value: ConditionStatus,
    reason: str,
    message: str,
    now: datetime,
    generation: int | None,
) -> None:
    """Upserts a condition; lastTransitionTime moves only when the status value changes."""
    index = next((i for i, c in enumerate(status.conditions) if c.type == kind), None)
    existing = status.conditions[index] if index is not None else None
    condition = Condition(
        type=kind,
        status=value,
        reason=reason,
        message=message,
        last_transition_time=existing.last_transition_time if existing and existing.status == value else now,
        observed_generation=generation,
    )
    if index is None:
        status.conditions.append(condition)
    else:
        status.conditions[index] = condition


def awaiting_promotion(status: ModelRolloutStatus) -> bool:
    return (
        status.phase in ("Canary", "Preview")
        and bool(status.history)
        and status.history[-1].reason == AWAITING_PROMOTION
    )


def update_conditions(
    status: ModelRolloutStatus,
    spec: ModelRolloutSpec,
    observations: Observations,
    safety: SafetyResult | None,
) -> None:
    """The conditions the planner derives from the new status and this tick's observations."""

    def put(kind: str, value: ConditionStatus, reason: str, message: str) -> None:
        set_condition(status, kind, value, reason, message, observations.now, observations.generation)

    phase = status.phase or "Pending"
    reason = AWAITING_PROMOTION if awaiting_promotion(status) else phase
    succeeded = phase == "Succeeded"
    put("Ready", _true(succeeded), reason, _ready_message(status) if succeeded else status.message)
    put("Reconciling", _true(phase in IN_FLIGHT), reason, status.message if phase in IN_FLIGHT else "")
    put("Stalled", _true(phase in FAILED), reason, status.message if phase in FAILED else "")
    put("Progressing", _true(phase in PROGRESSING), reason, status.message)
    degraded = phase in FAILED
    put("Degraded", _true(degraded), phase if degraded else "Healthy", status.message if degraded else "")
    last = status.history[-1] if status.history else None
    invalid = phase == "Blocked" and last is not None and last.reason == "InvalidTemplate"
    put(
        "InvalidSpec",
        _true(invalid),
        "InvalidTemplate" if invalid else "Valid",
        status.message if invalid else "",
    )
    if safety is not None:
        _rollback_safe(put, spec, status, safety)
    if observations.analysis is not None:
        _metrics_available(put, observations.analysis)
    if observations.shadowed_routes:
        put("RoutesShadowed", "True", "ForeignRouteFirst", "; ".join(observations.shadowed_routes))
    elif observations.shadowed_routes is not None:
        put("RoutesShadowed", "False", "OwnedRoutesReachable", "")


def _metrics_available(put: Callable[[str, ConditionStatus, str, str], None], result: AnalysisResult) -> None:
    """False, with the reason, when a query failed, answered partial data or answered no series at all."""
    if result.partial:
        partial = next((e for e in result.errors if "PartialData" in e), result.errors[0])
        put("MetricsAvailable", "False", "PartialData", partial)
    elif result.errors:
        put("MetricsAvailable", "False", "QueryFailed", result.errors[0])
    elif result.no_data:
        put("MetricsAvailable", "False", "NoData", f"no series for {', '.join(result.no_data)}")
    else:
        put("MetricsAvailable", "True", "QueriesAnswered", "")


def _rollback_safe(
    put: Callable[[str, ConditionStatus, str, str], None],
    spec: ModelRolloutSpec,
    status: ModelRolloutStatus,
    safety: SafetyResult,
) -> None:
    """True only when both schemas were compared; without one nothing was checked, and the condition says so."""
    if not safety.checked:
        put("RollbackSafe", "Unknown", "SchemaNotDeclared", "; ".join(safety.reasons))
    elif not safety.safe:
        verdict = "blocked" if spec.rollback.rollback_safety == "block" else "warning only"
        put("RollbackSafe", "False", "SchemaIncompatible", f"({verdict}) " + "; ".join(safety.reasons))
    else:
        compatible = f"{status.stable_version} can serve requests shaped for {status.candidate_version}"
        put("RollbackSafe", "True", "SchemaCompatible", compatible)


def _true(value: bool) -> ConditionStatus:
    return "True" if value else "False"


def _ready_message(status: ModelRolloutStatus) -> str:
    return f"{status.stable_version} serves all traffic"


def reconciled(status: ModelRolloutStatus, failure: str | None, now: datetime, generation: int) -> None:
    """Whether this tick's writes (routes, workloads) landed; `failure` says what did not."""
    if failure is None:
        set_condition(status, "Reconciled", "True", "Applied", "", now, generation)
    else:
        set_condition(status, "Reconciled", "False", "ApplyFailed", failure, now, generation)


def routing_of(status: ModelRolloutStatus) -> tuple[object, ...]:
    """What of a status the routes follow from (two statuses equal here route the same way)."""
    weights = tuple((item.name, item.canary_weight) for item in status.slices)
    return (status.phase, status.stable_version, status.candidate_version, status.step, status.canary_weight,
            status.mirror_percent, weights)  # fmt: skip


def applying(before: ModelRolloutStatus, after: ModelRolloutStatus, now: datetime, generation: int) -> None:
    """A decision that moves traffic is committed before its writes: until they land, Reconciled is Unknown
    (so nobody reads a committed decision as carried out)."""
    if routing_of(before) != routing_of(after):
        message = "decision recorded; writing the routes and workloads it implies"
        set_condition(after, "Reconciled", "Unknown", "Applying", message, now, generation)


def spec_refused(status: ModelRolloutStatus, message: str, now: datetime, generation: int) -> None:
    """The spec (or a status this operator cannot read) does not validate: nothing moves until it is fixed.

    The phase stays where it was; the conditions say the spec of this generation is refused: not Ready, not
    Reconciling, Stalled (kstatus: Failed)."""
    set_condition(status, "InvalidSpec", "True", "ValidationFailed", message, now, generation)
    set_condition(status, "Ready", "False", "ValidationFailed", message, now, generation)
    set_condition(status, "Reconciling", "False", "ValidationFailed", "", now, generation)
    set_condition(status, "Stalled", "True", "ValidationFailed", message, now, generation)
    status.message = message
    status.observed_generation = generation
