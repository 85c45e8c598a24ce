"""Model-ready capacity: the one rule that caps how much traffic the candidate may take."""

from __future__ import annotations

from modelrollout.api.spec import ModelRolloutSpec


def capacity_weight(spec: ModelRolloutSpec, ready: int) -> int:
    """The largest candidate share the model-ready replicas can carry (stable runs spec.replicas)."""
    if ready < spec.readiness.min_ready_replicas:
        return 0
    return min(100, (100 * ready) // spec.replicas)


def capped(spec: ModelRolloutSpec, wanted: int, ready: int) -> int:
    """`wanted` percent, or less when the candidate's model-ready replicas cannot carry it."""
    return min(wanted, capacity_weight(spec, ready))
