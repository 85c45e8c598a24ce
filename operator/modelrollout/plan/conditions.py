"""Standard conditions derived from the phase, so kubectl wait, Argo CD and alerts can read the rollout."""

from __future__ import annotations

from datetime import datetime

from modelrollout.api.spec import ModelRolloutSpec
from modelrollout.api.status import Condition, ConditionStatus, ModelRolloutStatus

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
        status.phase == "Canary" and bool(status.history) and status.history[-1].reason == AWAITING_PROMOTION
    )


def update_conditions(
    status: ModelRolloutStatus,
    spec: ModelRolloutSpec,
    now: datetime,
    generation: int,
    safety_reasons: list[str] | None,
) -> None:
    phase = status.phase or "Pending"
    serving = status.stable_version is not None
    ready: ConditionStatus = "True" if serving and phase != "Failed" else "False"
    set_condition(
        status,
        "Ready",
        ready,
        "StableServing" if ready == "True" else phase,
        f"{status.stable_version} serves users" if serving else "no version serves users yet",
        now,
        generation,
    )
    progressing = phase in ("Pending", "Warming", "Shadow", "Canary", "Promoting")
    reason = AWAITING_PROMOTION if awaiting_promotion(status) else phase
    set_condition(
        status, "Progressing", "True" if progressing else "False", reason, status.message, now, generation
    )
    degraded = phase in ("RolledBack", "Blocked", "Failed")
    set_condition(
        status,
        "Degraded",
        "True" if degraded else "False",
        phase if degraded else "Healthy",
        status.message if degraded else "",
        now,
        generation,
    )
    last = status.history[-1] if status.history else None
    invalid = phase == "Blocked" and last is not None and last.reason == "InvalidTemplate"
    set_condition(
        status,
        "InvalidSpec",
        "True" if invalid else "False",
        "InvalidTemplate" if invalid else "Valid",
        status.message if invalid else "",
        now,
        generation,
    )
    if safety_reasons is not None:
        if safety_reasons:
            verdict = "blocked" if spec.rollback.rollback_safety == "block" else "warning only"
            set_condition(
                status,
                "RollbackSafe",
                "False",
                "SchemaIncompatible",
                f"({verdict}) " + "; ".join(safety_reasons),
                now,
                generation,
            )
        else:
            set_condition(
                status,
                "RollbackSafe",
                "True",
                "SchemaCompatible",
                f"{status.stable_version} can serve requests shaped for {status.candidate_version}",
                now,
                generation,
            )
