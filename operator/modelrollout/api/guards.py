"""The analysis part of the spec: where metrics come from and the guards every slice is judged by."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field, model_validator

from modelrollout.api.common import (
    URL_PATTERN,
    Between,
    DnsLabel,
    Duration,
    NullsPruned,
    Rule,
    SpecModel,
    enforce,
    rules_schema,
    seconds,
    unique,
)

MAX_GUARDS = 16
MAX_SAMPLES = 100_000_000
MAX_SLICE_OVERRIDES = 33
"""Every declared slice (at most 32) and 'default'."""
BUILTIN_METRICS = (
    "errorRate",
    "latencyP50",
    "latencyP90",
    "latencyP95",
    "latencyP99",
    "latencyMean",
    "predictionPSI",
    "predictionKS",
    "nullPredictionRate",
    "accuracy",
)
COMPARATIVE_METRICS = ("predictionPSI", "predictionKS")
"""Metrics whose value already compares the candidate with stable: bounded by max or min only."""
AnalysisPhase = Literal["shadow", "canary"]
GuardAction = Literal["rollback", "pause"]
PauseTraffic = Literal["halt", "hold"]


def _all_phases() -> list[AnalysisPhase]:
    return ["shadow", "canary"]


# Analysis --------------------------------------------------------------------------------------------------
class PrometheusSource(SpecModel):
    """Where metrics are read."""

    url: str = Field(pattern=URL_PATTERN, max_length=512)
    """Prometheus base URL, e.g. http://prometheus.monitoring:9090."""
    timeout: Annotated[Duration, Between("100ms", "60s")] = "5s"
    """Timeout of each query, from connecting to the last byte of the answer (default 5s)."""


class MetricsSource(SpecModel):
    """Which metric names the built-in query templates use."""

    profile: Literal["modelrollout", "istio"] = "modelrollout"
    """modelrollout: the metrics of modelrollout.serving; istio: Istio's standard metrics with a slice tag."""


class Thresholds(SpecModel):
    """Bounds a guard checks; any subset may be set."""

    max: float | None = None
    """Upper bound on the candidate's value."""
    min: float | None = None
    """Lower bound on the candidate's value."""
    max_ratio_to_stable: float | None = Field(default=None, gt=0)
    """Upper bound on candidate / stable in the same slice and window."""
    max_delta_to_stable: float | None = Field(default=None, ge=0)
    """Upper bound on candidate - stable in the same slice and window."""
    min_ratio_to_stable: float | None = Field(default=None, gt=0)
    """Lower bound on candidate / stable, for metrics where higher is better (e.g. 0.95: at most 5% below stable)."""
    min_delta_to_stable: float | None = Field(default=None, ge=0)
    """Largest drop below stable allowed: the candidate must reach stable - this (e.g. 0.05 of accuracy)."""

    def bounds(self) -> dict[str, float | None]:
        """Every bound by its wire name, set or not."""
        return {
            "max": self.max,
            "min": self.min,
            "maxRatioToStable": self.max_ratio_to_stable,
            "maxDeltaToStable": self.max_delta_to_stable,
            "minRatioToStable": self.min_ratio_to_stable,
            "minDeltaToStable": self.min_delta_to_stable,
        }

    def any_set(self) -> bool:
        return any(v is not None for v in self.bounds().values())

    def relative(self) -> bool:
        """Whether a bound relative to stable is set (the judge then needs stable's value too)."""
        return any(
            v is not None
            for v in (
                self.max_ratio_to_stable,
                self.max_delta_to_stable,
                self.min_ratio_to_stable,
                self.min_delta_to_stable,
            )
        )

    def thresholds(self) -> Thresholds:
        """Only the bounds, as a plain Thresholds."""
        return Thresholds(
            max=self.max,
            min=self.min,
            max_ratio_to_stable=self.max_ratio_to_stable,
            max_delta_to_stable=self.max_delta_to_stable,
            min_ratio_to_stable=self.min_ratio_to_stable,
            min_delta_to_stable=self.min_delta_to_stable,
        )


_MIN_NOT_ABOVE_MAX = Rule(
    cel="!has(self.min) || !has(self.max) || self.min <= self.max",
    message="min cannot exceed max: no value could pass",
    check=lambda t: t.min is None or t.max is None or t.min <= t.max,
    field_path=".min",
)


class SliceOverride(Thresholds):
    """Per-slice thresholds that replace the guard's for one slice."""

    model_config = ConfigDict(json_schema_extra=rules_schema(_MIN_NOT_ABOVE_MAX))

    min_samples: int | None = Field(default=None, ge=1, le=MAX_SAMPLES)
    """Minimum samples per version in this slice (default: the guard's or analysis.minSamples)."""

    @model_validator(mode="after")
    def _rules(self) -> SliceOverride:
        enforce(self, _MIN_NOT_ABOVE_MAX)
        return self


RELATIVE_FIELDS = ("maxRatioToStable", "maxDeltaToStable", "minRatioToStable", "minDeltaToStable")
_THRESHOLD_SET = Rule(
    cel=" || ".join(f"has(self.{name})" for name in ("max", "min", *RELATIVE_FIELDS)),
    message=(
        "a guard needs at least one threshold: max, min, maxRatioToStable, maxDeltaToStable, "
        "minRatioToStable or minDeltaToStable"
    ),
    check=lambda g: g.any_set(),
)
_KNOWN_METRIC = Rule(
    cel="has(self.query) || self.metric in " + str(list(BUILTIN_METRICS)),
    message="metric must be one of " + ", ".join(BUILTIN_METRICS) + ", or the guard must give a custom query",
    check=lambda g: g.query is not None or g.metric in BUILTIN_METRICS,
    field_path=".metric",
)
_DISTRIBUTION_BOUNDS = Rule(
    cel=(
        f"!(self.metric in {list(COMPARATIVE_METRICS)}) || ("
        + " && ".join(f"!has(self.{name})" for name in RELATIVE_FIELDS)
        + ")"
    ),
    message="predictionPSI and predictionKS already compare the candidate with stable: bound them with max or min",
    check=lambda g: g.metric not in COMPARATIVE_METRICS or not g.relative(),
    field_path=".metric",
)
_SEQUENTIAL_ON_ERRORS = Rule(
    cel="!has(self.test) || self.test != 'sequential' || (self.metric == 'errorRate' && !has(self.query))",
    message="test: sequential applies to the built-in errorRate metric (it needs request and error counts)",
    check=lambda g: g.test != "sequential" or (g.metric == "errorRate" and g.query is None),
    field_path=".test",
)


_IMMEDIATE_OR_FOR = Rule(
    # `for` is a CEL reserved word: the API server exposes the field to CEL as __for__.
    cel="!has(self.immediate) || !self.immediate || !has(self.__for__)",
    message="immediate acts on the first failing evaluation, for waits until a guard has failed that long: set one",
    check=lambda g: not (g.immediate and g.failing_for is not None),
    field_path=".for",
)
_PAUSE_TRAFFIC_ON_PAUSE = Rule(
    cel="!has(self.pauseTraffic) || (has(self.action) && self.action == 'pause')",
    message="pauseTraffic applies only to guards with action: pause",
    check=lambda g: g.pause_traffic is None or g.action == "pause",
    field_path=".pauseTraffic",
)
_GUARD_RULES = (
    _THRESHOLD_SET,
    _KNOWN_METRIC,
    _SEQUENTIAL_ON_ERRORS,
    _DISTRIBUTION_BOUNDS,
    _IMMEDIATE_OR_FOR,
    _PAUSE_TRAFFIC_ON_PAUSE,
    _MIN_NOT_ABOVE_MAX,
)


class Guard(Thresholds):
    """A check run every analysis interval on every slice: a Fail rolls back (or pauses), per its trigger."""

    model_config = ConfigDict(json_schema_extra=rules_schema(*_GUARD_RULES))

    name: DnsLabel
    """Guard name, shown in verdicts."""
    metric: str = Field(min_length=1, max_length=63, pattern=r"^[A-Za-z][A-Za-z0-9_]*$")
    """Built-in metric (errorRate, latencyP50/P90/P95/P99, latencyMean, predictionPSI, predictionKS, nullPredictionRate, accuracy) or a name."""
    query: str | None = Field(default=None, min_length=1, max_length=4096)
    """Custom PromQL returning one value per (slice, version); placeholders {namespace} {model} {window} {versions}."""
    test: Literal["threshold", "sequential"] = "threshold"
    """threshold: compare the window's values; sequential: anytime-valid test on error counts (errorRate only)."""
    immediate: bool = False
    """Act on the first failing evaluation (default false)."""
    failure_limit: int = Field(default=2, ge=1, le=100)
    """Failing evaluations in one stage (shadow, or one canary step) before the guard acts, when not immediate;
    passes and inconclusive evaluations in between do not reset the count (default 2)."""
    failing_for: Annotated[Duration, Between("0s", "168h")] | None = Field(default=None, alias="for")
    """Act only once the guard has failed without a break for this long, e.g. 5m (and failureLimit times)."""
    action: GuardAction = "rollback"
    """rollback: every slice back on stable at once; pause: stop, page, and wait for resume or abort (default rollback)."""
    pause_traffic: PauseTraffic | None = None
    """With action pause: halt (candidate weight 0, still mirrored and judged in shadow if the spec has one) or hold (weights unchanged) (default halt)."""
    phases: list[AnalysisPhase] = Field(default_factory=_all_phases, min_length=1, max_length=2)
    """Phases in which the guard is judged (default shadow and canary)."""
    min_samples: int | None = Field(default=None, ge=1, le=MAX_SAMPLES)
    """Minimum samples per version and slice for this guard (default analysis.minSamples)."""
    slices: Annotated[dict[str, SliceOverride], NullsPruned] = Field(
        default_factory=dict, max_length=MAX_SLICE_OVERRIDES
    )
    """Per-slice threshold overrides, keyed by slice name (or 'default')."""

    @model_validator(mode="after")
    def _rules(self) -> Guard:
        enforce(self, *_GUARD_RULES)
        return self

    def thresholds_for(self, slice_name: str) -> Thresholds:
        """The thresholds that apply to one slice: the override's where it sets any, else the guard's."""
        override = self.slices.get(slice_name)
        if override is not None and override.any_set():
            return override.thresholds()
        return self.thresholds()

    def paused_traffic(self) -> PauseTraffic:
        """What a pause by this guard does to traffic (halt unless the guard says hold)."""
        return self.pause_traffic or "halt"

    def failing_for_seconds(self) -> float | None:
        return seconds(self.failing_for) if self.failing_for is not None else None


_GUARDS_UNIQUE = Rule(
    cel="self.guards.all(g, self.guards.exists_one(h, h.name == g.name))",
    message="guard names must be unique",
    check=lambda a: unique(a.guards, "name"),
    field_path=".guards",
)


class Analysis(SpecModel):
    """Per-slice judging of the candidate against stable."""

    model_config = ConfigDict(json_schema_extra=rules_schema(_GUARDS_UNIQUE))

    interval: Annotated[Duration, Between("1s", "1h")] = "30s"
    """How often every slice is judged (default 30s)."""
    window: Annotated[Duration, Between("1s", "24h")] | None = None
    """Range of each query, e.g. 1m (default: twice the interval, at least 10s)."""
    prometheus: PrometheusSource
    """Prometheus to query."""
    metrics: MetricsSource = Field(default_factory=MetricsSource)
    """Query template profile."""
    min_samples: int = Field(default=200, ge=1, le=MAX_SAMPLES)
    """Requests per slice and version needed in the window; fewer is Inconclusive (default 200)."""
    on_inconclusive: Literal["hold", "fail"] = "hold"
    """hold: wait for data; fail: roll back after maxInconclusive inconclusive evaluations (default hold)."""
    max_inconclusive: int = Field(default=10, ge=1, le=10_000)
    """Evaluations with an inconclusive slice tolerated in one stage when onInconclusive is fail (default 10)."""
    missing_data_deadline: Annotated[Duration, Between("1s", "168h")] = "15m"
    """How long one stage (shadow, or one canary step) may go without an evaluation in which every slice is
    conclusive (Pass or Fail) before onMissingData happens; counted from the stage's start or its last
    conclusive evaluation, whichever is later (default 15m)."""
    on_missing_data: Literal["rollback", "pause"] = "rollback"
    """What happens at missingDataDeadline. rollback: every slice back on stable; pause: traffic held as it
    is, a Warning Event and a notification once per stage, until the data is back (default rollback)."""
    alpha: float = Field(default=0.05, gt=0, lt=0.5)
    """False-rollback budget of the sequential tests over a whole rollout, split across slices and stages (default 0.05)."""
    guards: list[Guard] = Field(min_length=1, max_length=MAX_GUARDS)
    """Guards judged on every slice."""

    @model_validator(mode="after")
    def _rules(self) -> Analysis:
        enforce(self, _GUARDS_UNIQUE)
        return self
