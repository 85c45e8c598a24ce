"""What the planner reads: the world as the controller observed it at the start of a tick."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from modelrollout.analysis.experiment import Counts
from modelrollout.analysis.results import AnalysisResult
from modelrollout.api.status import Fingerprint


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
    experiment: Counts | str | None = None
    """A/B experiment: the metric's counters per slice and arm since it began, or why they are missing
    (None: not read this tick)."""
    gates: list[GateResult] | None = None
    commands: Commands = field(default_factory=Commands)
    candidate_fingerprint: Fingerprint | str | None = None
    """The candidate's fingerprint rendered from the spec, or why the template cannot make a pod (None: not
    computed; the planner then refuses to deploy). Rendering is the workloads module's job, not the planner's."""
    shadowed_routes: list[str] | None = None
    """Foreign routes before ours that catch an owned route's requests ("x shadows modelrollout-ios");
    None when the VirtualService was not read."""
    routes_refused: str | None = None
    """Why the rollout's routes cannot be written at all (its VirtualService belongs to another rollout);
    nothing that would need them is decided while so."""


@dataclass(frozen=True)
class Needs:
    """What the controller must fetch before planning this tick."""

    gates: bool
    analysis: bool
