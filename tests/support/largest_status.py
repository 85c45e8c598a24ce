"""The largest status the spec's bounds allow: every slice and guard judged, with long reasons, full history,
and the largest serving schema on all three version records. Written to the real API server by a test."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from modelrollout.api.guards import MAX_GUARDS
from modelrollout.api.spec import MAX_FEATURES, MAX_SLICES, Feature, ServingSchema
from modelrollout.api.status import (
    HISTORY_LIMIT,
    Condition,
    Decision,
    GuardVerdict,
    ModelRolloutStatus,
    Samples,
    SliceStatus,
    VersionRecord,
)
from modelrollout.plan.tick import bounded_history

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
REASON = "r" * 512  # longer than any sentence the judges write (metric and guard names are at most 63)


def verdict(guard: int, slice_name: str) -> GuardVerdict:
    return GuardVerdict(
        name=f"guard-{guard:02d}-" + "g" * 54,
        metric="m" * 63,
        verdict="Fail",
        stable=1.0e300,
        canary=-1.0e300,
        threshold=1.0e-300,
        bound="maxRatioToStable",
        samples=Samples(stable=10**15, canary=10**15),
        reason=f"slice {slice_name}: {REASON}",
        failures=10**6,
    )


def version(name: str) -> VersionRecord:
    features = [Feature(name=f"f{i:03d}" + "x" * 124, type="string") for i in range(MAX_FEATURES)]
    return VersionRecord(
        version=name, uri="s3://" + "u" * 1019, serving_schema=ServingSchema(version=1, features=features)
    )


def every_verdict() -> list[GuardVerdict]:
    slices = [f"s{i:02d}" + "s" * 60 for i in range(MAX_SLICES)] + ["default"]
    return [verdict(g, s) for s in slices for g in range(MAX_GUARDS)]


def largest_status(history: list[Decision]) -> ModelRolloutStatus:
    """`history` as the planner built it; everything else at its bound."""
    evidence = every_verdict()
    slices = [
        SliceStatus(
            name=v.reason.split(":")[0].removeprefix("slice "),
            canary_weight=100,
            verdict="Fail",
            guards=[g for g in evidence if g.reason == v.reason],
            passing_since=NOW,
        )
        for v in evidence[::MAX_GUARDS]
    ]
    names = ["v" + "1" * 39, "v" + "2" * 39, "v" + "3" * 39]
    conditions = [
        Condition(type=kind, status="False", reason=kind, message=REASON * 4, last_transition_time=NOW)
        for kind in ["Ready", "Progressing", "Degraded", "InvalidSpec", "RollbackSafe", "MetricsAvailable"]
    ]
    return ModelRolloutStatus(
        phase="RolledBack",
        stable_version=names[0],
        candidate_version=names[1],
        previous_version=names[2],
        stable=version(names[0]),
        candidate=version(names[1]),
        previous=version(names[2]),
        slices=slices,
        conditions=conditions,
        message=REASON * 4,
        history=bounded_history(history),
    )


def decisions(count: int = HISTORY_LIMIT + 5) -> list[Decision]:
    """Rollbacks, each citing every verdict (as many as the bounds allow), a second apart."""
    evidence = every_verdict()
    return [
        Decision(
            time=NOW + timedelta(seconds=i),
            phase="RolledBack",
            reason="GuardFailed",
            message=REASON,
            evidence=evidence,
        )
        for i in range(count)
    ]
