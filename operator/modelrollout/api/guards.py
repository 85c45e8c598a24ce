"""The analysis part of the spec: where metrics come from and the guards every slice is judged by."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field, model_validator

from modelrollout.api.common import (
    URL_PATTERN,
    DnsLabel,
    Duration,
    NullsPruned,
    Rule,
    SpecModel,
    enforce,
    rules_schema,
    unique,
)

MAX_GUARDS = 16
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
)
AnalysisPhase = Literal["shadow", "canary"]


def _all_phases() -> list[AnalysisPhase]:
    return ["shadow", "canary"]


# Analysis --------------------------------------------------------------------------------------------------
class PrometheusSource(SpecModel):
    """Where metrics are read."""

    url: str = Field(pattern=URL_PATTERN, max_length=512)
    """Prometheus base URL, e.g. http://prometheus.monitoring:9090."""
    timeout: Duration = "5s"
    """Timeout of each query (default 5s)."""


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

    def any_set(self) -> bool:
        return any(
            v is not None for v in (self.max, self.min, self.max_ratio_to_stable, self.max_delta_to_stable)
        )


class SliceOverride(Thresholds):
    """Per-slice thresholds that replace the guard's for one slice."""

    min_samples: int | None = Field(default=None, ge=1)
    """Minimum samples per version in this slice (default: the guard's or analysis.minSamples)."""


_THRESHOLD_SET = Rule(
    cel="has(self.max) || has(self.min) || has(self.maxRatioToStable) || has(self.maxDeltaToStable)",
    message="a guard needs at least one threshold: max, min, maxRatioToStable or maxDeltaToStable",
    check=lambda g: g.any_set(),
)
_KNOWN_METRIC = Rule(
    cel="has(self.query) || self.metric in " + str(list(BUILTIN_METRICS)),
    message="metric must be one of " + ", ".join(BUILTIN_METRICS) + ", or the guard must give a custom query",
    check=lambda g: g.query is not None or g.metric in BUILTIN_METRICS,
    field_path=".metric",
)
_DISTRIBUTION_BOUNDS = Rule(
    cel="!(self.metric in ['predictionPSI', 'predictionKS']) || (!has(self.maxRatioToStable) && !has(self.maxDeltaToStable))",
    message="predictionPSI and predictionKS already compare the candidate with stable: bound them with max or min",
    check=lambda g: (
        g.metric not in ("predictionPSI", "predictionKS")
        or (g.max_ratio_to_stable is None and g.max_delta_to_stable is None)
    ),
    field_path=".metric",
)
_SEQUENTIAL_ON_ERRORS = Rule(
    cel="!has(self.test) || self.test != 'sequential' || (self.metric == 'errorRate' && !has(self.query))",
    message="test: sequential applies to the built-in errorRate metric (it needs request and error counts)",
    check=lambda g: g.test != "sequential" or (g.metric == "errorRate" and g.query is None),
    field_path=".test",
)


class Guard(Thresholds):
    """A check run every analysis interval on every slice: a Fail rolls back, per immediate/failureLimit."""

    model_config = ConfigDict(
        json_schema_extra=rules_schema(
            _THRESHOLD_SET, _KNOWN_METRIC, _SEQUENTIAL_ON_ERRORS, _DISTRIBUTION_BOUNDS
        )
    )

    name: DnsLabel
    """Guard name, shown in verdicts."""
    metric: str = Field(min_length=1, max_length=63, pattern=r"^[A-Za-z][A-Za-z0-9_]*$")
    """Built-in metric (errorRate, latencyP50/P90/P95/P99, latencyMean, predictionPSI, predictionKS) or a name."""
    query: str | None = Field(default=None, min_length=1, max_length=4096)
    """Custom PromQL returning one value per (slice, version); placeholders {namespace} {model} {window} {versions}."""
    test: Literal["threshold", "sequential"] = "threshold"
    """threshold: compare the window's values; sequential: anytime-valid test on error counts (errorRate only)."""
    immediate: bool = False
    """Roll back on the first failing evaluation (default false)."""
    failure_limit: int = Field(default=2, ge=1, le=100)
    """Consecutive failing evaluations that roll back when not immediate (default 2)."""
    phases: list[AnalysisPhase] = Field(default_factory=_all_phases, min_length=1, max_length=2)
    """Phases in which the guard is judged (default shadow and canary)."""
    min_samples: int | None = Field(default=None, ge=1)
    """Minimum samples per version and slice for this guard (default analysis.minSamples)."""
    slices: Annotated[dict[str, SliceOverride], NullsPruned] = Field(
        default_factory=dict, max_length=MAX_SLICE_OVERRIDES
    )
    """Per-slice threshold overrides, keyed by slice name (or 'default')."""

    @model_validator(mode="after")
    def _rules(self) -> Guard:
        enforce(self, _THRESHOLD_SET, _KNOWN_METRIC, _SEQUENTIAL_ON_ERRORS, _DISTRIBUTION_BOUNDS)
        return self

    def thresholds_for(self, slice_name: str) -> Thresholds:
        """The thresholds that apply to one slice: the override's where it sets any, else the guard's."""
        override = self.slices.get(slice_name)
        if override is not None and override.any_set():
            return Thresholds(
                max=override.max,
                min=override.min,
                max_ratio_to_stable=override.max_ratio_to_stable,
                max_delta_to_stable=override.max_delta_to_stable,
            )
        return Thresholds(
            max=self.max,
            min=self.min,
            max_ratio_to_stable=self.max_ratio_to_stable,
            max_delta_to_stable=self.max_delta_to_stable,
        )


_GUARDS_UNIQUE = Rule(
    cel="self.guards.all(g, self.guards.exists_one(h, h.name == g.name))",
    message="guard names must be unique",
    check=lambda a: unique(a.guards, "name"),
    field_path=".guards",
)


class Analysis(SpecModel):
    """Per-slice judging of the candidate against stable."""

    model_config = ConfigDict(json_schema_extra=rules_schema(_GUARDS_UNIQUE))

    interval: Duration = "30s"
    """How often every slice is judged (default 30s)."""
    window: Duration | None = None
    """Range of each query, e.g. 1m (default: twice the interval, at least 10s)."""
    prometheus: PrometheusSource
    """Prometheus to query."""
    metrics: MetricsSource = Field(default_factory=MetricsSource)
    """Query template profile."""
    min_samples: int = Field(default=200, ge=1)
    """Requests per slice and version needed in the window; fewer is Inconclusive (default 200)."""
    on_inconclusive: Literal["hold", "fail"] = "hold"
    """hold: wait for data; fail: roll back after maxInconclusive inconclusive evaluations (default hold)."""
    max_inconclusive: int = Field(default=10, ge=1)
    """Consecutive inconclusive evaluations tolerated when onInconclusive is fail (default 10)."""
    alpha: float = Field(default=0.05, gt=0, lt=0.5)
    """False-rollback budget of the sequential tests over a whole rollout, split across slices and stages (default 0.05)."""
    guards: list[Guard] = Field(min_length=1, max_length=MAX_GUARDS)
    """Guards judged on every slice."""

    @model_validator(mode="after")
    def _rules(self) -> Analysis:
        enforce(self, _GUARDS_UNIQUE)
        return self
