"""What the planner reads (observations) and what it asks the controller to do (actions)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from modelrollout.analysis.model import AnalysisResult
from modelrollout.api.status import GuardVerdict, ModelRolloutStatus


@dataclass(frozen=True)
class WorkloadState:
    """A per-version Deployment as observed: ready replicas are model-ready (the readiness probe is the model's)."""

    version: str
    replicas: int
    ready_replicas: int


@dataclass(frozen=True)
class GateResult:
    name: str
    allowed: bool
    reason: str


@dataclass(frozen=True)
class Commands:
    """Manual commands read from the resource's annotations (see modelrollout.api.commands)."""

    paused: bool = False
    promote: str | None = None  # command id; acted on once (status.acknowledged)
    promote_full: bool = False  # skip the remaining steps instead of advancing one
    abort: str | None = None
    retry: str | None = None


@dataclass(frozen=True)
class Observations:
    now: datetime
    generation: int
    workloads: dict[str, WorkloadState] = field(default_factory=dict)
    analysis: AnalysisResult | None = None
    gates: list[GateResult] | None = None
    commands: Commands = field(default_factory=Commands)


@dataclass(frozen=True)
class Needs:
    """What the controller must fetch before planning this tick."""

    gates: bool
    analysis: bool


# Actions -----------------------------------------------------------------------------------------------------
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
