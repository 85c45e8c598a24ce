"""What the planner asks the controller to do: one tick's actions, applied routes first."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from modelrollout.api.status import GuardVerdict, ModelRolloutStatus


@dataclass(frozen=True)
class EnsureWorkload:
    """Create the version's Deployment and Service if missing; set replicas. `render` re-renders the pod template
    from the current spec (the candidate); stable and previous versions keep the template they were rolled out with."""

    version: str
    uri: str
    replicas: int
    render: bool


@dataclass(frozen=True)
class RemoveWorkload:
    version: str


@dataclass(frozen=True)
class SetRoutes:
    """The whole routing state in one VirtualService write (written only when it differs from the live one)."""

    stable: str
    candidate: str | None
    weights: dict[str, int]
    mirror_percent: float | None
    qa: bool = False
    """The QA override route to the candidate (spec.strategy.qaOverride)."""
    preview: bool = False
    """The blue-green preview route to the candidate."""
    experiment: bool = False
    """The A/B arm routes: per slice, users whose sticky key falls in the candidate's buckets reach it."""


@dataclass(frozen=True)
class Notify:
    reason: str
    message: str
    evidence: list[GuardVerdict]


@dataclass(frozen=True)
class Event:
    type: Literal["Normal", "Warning"]
    reason: str
    message: str


Action = EnsureWorkload | RemoveWorkload | SetRoutes | Notify | Event


@dataclass(frozen=True)
class Plan:
    status: ModelRolloutStatus
    actions: list[Action]
