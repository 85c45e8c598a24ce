"""The ModelRollout status: where the rollout is, and the evidence behind every decision.

The status is the operator's only memory: a restarted operator resumes from it exactly.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field, model_validator

from modelrollout.api.common import Model
from modelrollout.api.spec import ServingSchema

Phase = Literal[
    "Pending",
    "Warming",
    "Shadow",
    "Canary",
    "Preview",
    "Baking",
    "Experiment",
    "Promoting",
    "Succeeded",
    "RolledBack",
    "Blocked",
    "Paused",
    "Failed",
]
# Phase groups: what each part of the product asks of a phase, named once.
IN_FLIGHT: frozenset[str] = frozenset(
    {"Pending", "Warming", "Shadow", "Canary", "Preview", "Baking", "Experiment", "Promoting", "Paused"}
)
"""A rollout is under way (a candidate exists and may still be promoted or rolled back)."""
PROGRESSING: frozenset[str] = frozenset(
    {"Pending", "Warming", "Shadow", "Canary", "Preview", "Baking", "Experiment", "Promoting"}
)
"""The operator is moving the rollout on by itself (in flight and not paused)."""
JUDGED: frozenset[str] = frozenset({"Shadow", "Canary", "Baking", "Experiment"})
"""Guards are evaluated (also while paused in one of these)."""
SERVING: frozenset[str] = frozenset({"Canary", "Baking", "Promoting"})
"""The candidate answers users' requests (by weight)."""
CARRIES_CANDIDATE: frozenset[str] = frozenset(
    {"Shadow", "Canary", "Preview", "Baking", "Experiment", "Promoting"}
)
"""The routes name the candidate: it is model-ready and mirrored to, previewed or serving."""
PROMOTABLE: frozenset[str] = frozenset({"Shadow", "Canary", "Preview", "Baking", "Experiment"})
"""`promote` moves these on."""
PAUSABLE: frozenset[str] = frozenset(
    {"Warming", "Shadow", "Canary", "Preview", "Baking", "Experiment", "Promoting"}
)
"""`pause` holds these."""
TERMINAL: frozenset[str] = frozenset({"Succeeded", "RolledBack", "Blocked", "Failed"})
"""Nothing more happens without a new version or a command."""
FAILED: frozenset[str] = frozenset({"RolledBack", "Blocked", "Failed"})
"""Ended without the candidate serving: Degraded, Warning events, and what `retry` restarts."""
Verdict = Literal["Pass", "Fail", "Inconclusive"]
ConditionStatus = Literal["True", "False", "Unknown"]
HISTORY_LIMIT = 20
HISTORY_MAX_BYTES = 256 * 1024
"""History as JSON stays under this: with 33 slices x 16 guards of evidence per entry, 20 entries would pass
etcd's 1.5 MiB object limit, and then every status write fails."""
EVIDENCE_LIMIT = 32
"""Guard verdicts kept per history entry (failing ones first); the full set is in `slices` for the latest."""


class Samples(Model):
    """Requests counted per version in the analysis window."""

    stable: int = 0
    """Stable version's samples."""
    canary: int = 0
    """Candidate version's samples."""


class GuardVerdict(Model):
    """One guard's verdict on one slice, with its evidence."""

    name: str
    """Guard name."""
    metric: str
    """Metric judged."""
    verdict: Verdict
    """Pass, Fail or Inconclusive."""
    stable: float | None = None
    """Stable's value in the window."""
    canary: float | None = None
    """Candidate's value in the window."""
    threshold: float | None = None
    """The bound the candidate's value was held to (for ratio and delta guards: already scaled by stable)."""
    bound: str | None = None
    """Which threshold decided: max, min, maxRatioToStable, maxDeltaToStable, minRatioToStable, minDeltaToStable or sequential."""
    samples: Samples = Field(default_factory=Samples)
    """Samples behind the values."""
    reason: str = ""
    """One sentence a person can act on."""
    failures: int = 0
    """Failing evaluations of this guard on this slice in the current stage (shadow, or one canary step),
    compared with the guard's failureLimit. Pass and Inconclusive evaluations do not reset it; a new stage does."""

    @model_validator(mode="before")
    @classmethod
    def _read_older_statuses(cls, data: Any) -> Any:
        # Earlier versions counted failures in a row as consecutiveFailures: read it as this stage's count.
        if isinstance(data, dict) and "consecutiveFailures" in data:
            data = dict(data)
            legacy = data.pop("consecutiveFailures")
            data.setdefault("failures", legacy)
        return data


class SliceStatus(Model):
    """One slice: its canary weight and its verdict."""

    name: str
    """Slice name ('default' is unmatched traffic)."""
    canary_weight: int = 0
    """Percent of this slice's requests sent to the candidate."""
    verdict: Verdict | None = None
    """Latest verdict: Fail if any guard fails, else Inconclusive if any is, else Pass."""
    samples: Samples = Field(default_factory=Samples)
    """Requests in the latest window."""
    guards: list[GuardVerdict] = Field(default_factory=list)
    """Per-guard verdicts with evidence."""
    passing_since: datetime | None = None
    """Start of the slice's current unbroken run of Pass verdicts."""


class Fingerprint(Model):
    """What makes a version reproducible."""

    images: list[str] = Field(default_factory=list)
    """Container images (with digests when the template pins them)."""
    model_uri: str = ""
    """Model artifact URI."""
    environment: str | None = None
    """The template's declared environment fingerprint (annotation modelrollout.io/environment-fingerprint)."""
    template_hash: str = ""
    """Hash of the rendered pod template."""


class VersionRecord(Model):
    """A model version the rollout has served or is trying."""

    version: str
    """Model version."""
    uri: str = ""
    """Model URI."""
    serving_schema: ServingSchema | None = Field(default=None, alias="schema")
    """Serving schema declared for the version."""
    fingerprint: Fingerprint | None = None
    """Reproducibility fingerprint."""


class Condition(Model):
    """A standard Kubernetes condition."""

    type: str
    """Condition type: Ready, Reconciling, Stalled, Progressing, Degraded, RollbackSafe, InvalidSpec,
    MetricsAvailable, Reconciled."""
    status: ConditionStatus
    """True, False or Unknown."""
    reason: str
    """CamelCase reason."""
    message: str = ""
    """Human-readable detail."""
    last_transition_time: datetime
    """When status last changed."""
    observed_generation: int | None = None
    """Generation of the spec the condition was computed from."""


class ArmEffect(Model):
    """The experiment's primary metric on one slice (or 'overall', pooled): both arms and the effect."""

    slice: str
    stable_rate: float | None = None
    candidate_rate: float | None = None
    stable_trials: int = 0
    candidate_trials: int = 0
    effect: float | None = None
    """Candidate relative to stable, e.g. 0.1 for +10% (None before enough data)."""
    low: float | None = None
    high: float | None = None
    """Anytime-valid confidence interval of the relative effect (overall at alpha, a slice at alpha/slices)."""
    direction: Literal["better", "worse", "none"] = "none"
    """Significant direction at that level, or none."""


class ExperimentStatus(Model):
    """Where the A/B experiment stands: the planned sample, the progress, the effects."""

    metric: str
    planned_trials_per_arm: int | None = None
    """Trials per arm a fixed-horizon test needs for the declared effect, alpha and power."""
    cap_trials_per_arm: int | None = None
    """Trials per arm at which no significant difference ends the experiment."""
    progress: float = 0.0
    """The smaller arm's trials over the cap (0..1)."""
    overall: ArmEffect | None = None
    slices: list[ArmEffect] = Field(default_factory=list)
    warning: str = ""
    """Slices whose effect points the other way than the overall one (Simpson's paradox), if any."""
    outcome: str = ""
    """Better, Worse, WorseOnSlice or NoDifference once decided."""


class Decision(Model):
    """One entry of the bounded decision history."""

    time: datetime
    """When it was decided."""
    phase: str
    """Phase entered (or kept)."""
    reason: str
    """Machine-readable reason, e.g. StepAdvanced, GuardFailed, Promoted."""
    message: str
    """What happened and why."""
    step: int | None = None
    """Canary step (1-based) at the time."""
    weight: int | None = None
    """Canary weight at the time."""
    evidence: list[GuardVerdict] = Field(default_factory=list)
    """Guard verdicts behind the decision (failing ones for a rollback), at most 32."""


class Acknowledged(Model):
    """Manual commands already acted on, so a command annotation acts once."""

    promote: str | None = None
    """Last promote command id handled."""
    abort: str | None = None
    """Last abort command id handled."""
    retry: str | None = None
    """Last retry command id handled."""


class ModelRolloutStatus(Model):
    """Observed state of a ModelRollout."""

    observed_generation: int | None = None
    """Spec generation the status reflects."""
    phase: Phase | None = None
    """Pending, Warming, Shadow, Canary, Preview, Baking, Experiment, Promoting, Succeeded, RolledBack,
    Blocked, Paused or Failed."""
    paused_phase: Phase | None = None
    """The phase a paused rollout resumes into."""
    stable_version: str | None = None
    """Version serving users."""
    candidate_version: str | None = None
    """Version being rolled out."""
    previous_version: str | None = None
    """Stable version before the last promotion (kept warm for undo)."""
    stable: VersionRecord | None = None
    """The stable version's record."""
    candidate: VersionRecord | None = None
    """The candidate version's record."""
    previous: VersionRecord | None = None
    """The previous stable version's record."""
    step: int = 0
    """Current canary step, 1-based (0 before the canary)."""
    canary_weight: int = 0
    """Candidate share of every slice, in percent, as last written to the routes."""
    mirror_percent: float = 0.0
    """Share mirrored to the candidate, in percent, as last written to the routes."""
    failing_slices: int = 0
    """Slices whose latest verdict is Fail."""
    phase_since: datetime | None = None
    """When the current phase began."""
    step_since: datetime | None = None
    """When the current step (or shadow, preview or bake) began."""
    switched_at: datetime | None = None
    """Blue-green: when every slice was switched to the candidate; relative guards in the bake compare with
    stable's window ending here."""
    experiment: ExperimentStatus | None = None
    """A/B experiment: sample size, progress and effects (overall and per slice)."""
    last_analysis: datetime | None = None
    """When slices were last judged."""
    conclusive_at: datetime | None = None
    """The last evaluation of the current stage in which every slice was conclusive (the missing-data
    deadline counts from it, or from the stage's start)."""
    missing_data_overdue: bool = False
    """The current stage ran past analysis.missingDataDeadline with onMissingData: pause (announced once)."""
    inconclusive_count: int = 0
    """Evaluations in the current stage with an Inconclusive slice (compared with maxInconclusive)."""
    slices: list[SliceStatus] = Field(default_factory=list)
    """Per-slice weights and verdicts."""
    conditions: list[Condition] = Field(default_factory=list)
    """Ready, Reconciling, Stalled, Progressing, Degraded, RollbackSafe, InvalidSpec, MetricsAvailable, Reconciled."""
    message: str = ""
    """The latest decision in one sentence."""
    history: list[Decision] = Field(default_factory=list, max_length=HISTORY_LIMIT)
    """Recent decisions with evidence, newest last."""
    acknowledged: Acknowledged = Field(default_factory=Acknowledged)
    """Manual commands already handled."""
    previous_warm_until: datetime | None = None
    """When the previous version is scaled down."""
    candidate_scale_down_at: datetime | None = None
    """When a rolled-back candidate is scaled down."""
