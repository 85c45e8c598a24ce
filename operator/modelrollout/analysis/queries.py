"""PromQL templates per metrics profile, and the decoders that turn their answers into per-slice values.

Cost model: one instant query per guard per tick, each grouped by (slice, version) and never naming a
slice, so a rollout with 32 slices costs what one with 2 costs. Guards whose PromQL is identical (say an
absolute and a ratio guard on errorRate over the same window) share one query.

Samples of custom guards: a custom query returns values, not request counts, so the request counts that
gate minSamples come from the request-count query of an errorRate guard (threshold test) judged in the same
phase (same window, same text: shared, no extra cost); when there is none, exactly one extra request-count
query per tick serves all custom guards.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal

from modelrollout.analysis.results import Sample
from modelrollout.api.common import seconds
from modelrollout.api.guards import COMPARATIVE_METRICS, AnalysisPhase, Guard
from modelrollout.api.spec import ModelRolloutSpec

Role = Literal["stable", "canary"]
Kind = Literal["counts", "buckets", "mean", "scores", "tally", "custom"]
SliceKey = tuple[str, Role]
"""(slice name, stable or canary)."""

REQUESTS_KEY = "_requests"
"""Plan key of the request-count query giving custom guards their samples (guard names never start with _)."""
LATENCY_QUANTILES = {"latencyP50": 0.5, "latencyP90": 0.9, "latencyP95": 0.95, "latencyP99": 0.99}
MIN_WINDOW_SECONDS = 10.0
_REGEX_SPECIAL = set("\\.+*?()|[]{}^$")


@dataclass(frozen=True)
class Query:
    """One PromQL instant query and how to read its answer."""

    kind: Kind
    promql: str
    version_label: str = "version"
    code_label: str = "code"
    scale: float = 1.0
    """Factor from the metric's unit to seconds (Istio reports milliseconds)."""
    tally_label: str = ""
    """For tallies: the label that splits the counter, and the value counted as a hit."""
    tally_hit: str = ""
    shape: str | None = None
    """The same query for any set of rollouts (BATCH_MATCHERS where the rollout's matchers go, grouped also
    by the scope labels), or None when it cannot be shared (custom queries)."""
    scope: tuple[str, str, str] = ("", "", "")
    """(namespace, model, versions regex) of the rollout this query is for."""
    scope_labels: tuple[str, str] = ("namespace", "model")
    """The labels of a batched answer that say which rollout's namespace and model a sample belongs to."""


@dataclass(frozen=True)
class QueryPlan:
    """The queries of one tick, keyed by guard name (and REQUESTS_KEY when custom guards need samples)."""

    queries: dict[str, Query]
    window: str
    """The range of threshold guards' queries, e.g. 60s."""

    def distinct(self) -> list[Query]:
        """Queries to issue, each once, in plan order (guards with identical PromQL share one)."""
        return list(dict.fromkeys(self.queries.values()))


@dataclass(frozen=True)
class Counts:
    """Requests and server errors (code >= 500) of one slice and version in a window."""

    requests: float
    errors: float


@dataclass(frozen=True)
class Tally:
    """Events of one slice and version in a window, and how many of them were hits (null answers, correct
    labels)."""

    total: float
    hits: float


TALLIES: dict[str, tuple[str, str, str]] = {
    # metric: (counter of the serving library, label that splits it, the value that is a hit)
    "nullPredictionRate": ("model_predictions_total", "prediction", "null"),
    "accuracy": ("model_feedback_total", "outcome", "correct"),
}
"""Built-in metrics that are a share of one counter of modelrollout.serving: hits / total."""


# Windows and escaping ------------------------------------------------------------------------------------
def window_seconds(spec: ModelRolloutSpec) -> float:
    """analysis.window, else twice the interval but at least 10s (a range needs two scrapes or more)."""
    if spec.analysis.window is not None:
        return seconds(spec.analysis.window)
    return max(2 * seconds(spec.analysis.interval), MIN_WINDOW_SECONDS)


def sequential_window_seconds(since: datetime, now: datetime) -> int:
    """Whole seconds from the start of the step (or shadow) to now, rounded up, at least 1."""
    return max(1, math.ceil((now - since).total_seconds()))


def format_range(window: float) -> str:
    """A PromQL range: whole seconds as `Ns`, anything finer as `Nms`."""
    if window <= 0:
        raise ValueError(f"window must be positive, got {window}")
    if float(window).is_integer():
        return f"{int(window)}s"
    return f"{max(1, round(window * 1000))}ms"


def promql_string(value: str) -> str:
    """Escapes a value for a double-quoted PromQL string literal."""
    return value.replace("\\", "\\\\").replace('"', '\\"')


def versions_regex(*versions: str) -> str:
    """RE2 alternation matching exactly these versions (dots and other specials escaped), deduplicated."""
    parts = ["".join("\\" + ch if ch in _REGEX_SPECIAL else ch for ch in v) for v in dict.fromkeys(versions)]
    return "|".join(parts)


def active_guards(spec: ModelRolloutSpec, phase: AnalysisPhase) -> list[Guard]:
    """Guards judged in this phase, in spec order."""
    return [g for g in spec.analysis.guards if phase in g.phases]


def needs_stable(guard: Guard) -> bool:
    """Whether judging the guard reads stable's values: a bound relative to stable (for any slice), a metric
    that compares the two, or the sequential test."""
    relative = any(limits.relative() for limits in (guard, *guard.slices.values()))
    return relative or guard.metric in COMPARATIVE_METRICS or guard.test == "sequential"


def stable_keys(plan: QueryPlan, guards: Sequence[Guard]) -> set[str]:
    """Plan keys whose answers give stable's values to some guard (REQUESTS_KEY when a custom guard needs
    stable's sample count)."""
    keys = {g.name for g in guards if needs_stable(g) and g.name in plan.queries}
    if any(g.query is not None and needs_stable(g) for g in guards) and REQUESTS_KEY in plan.queries:
        keys.add(REQUESTS_KEY)
    return keys


# Templates -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Selectors:
    modelrollout: str
    istio: str


def _selectors(spec: ModelRolloutSpec, namespace: str, stable: str, candidate: str) -> _Selectors:
    versions = promql_string(versions_regex(stable, candidate))
    model = promql_string(spec.model.name)
    return _Selectors(
        # Prometheus' Kubernetes discovery (and PodMonitors) attach `namespace`; without it, the same model
        # name in two namespaces (staging and production) would be judged on each other's traffic.
        modelrollout=f'namespace="{promql_string(namespace)}",model="{model}",version=~"{versions}"',
        istio=(
            f'reporter="destination",destination_workload_namespace="{promql_string(namespace)}",'
            f'destination_canonical_service="{model}",destination_version=~"{versions}"'
        ),
    )


def _counts_query(spec: ModelRolloutSpec, sel: _Selectors, window: str) -> Query:
    if spec.analysis.metrics.profile == "istio":
        promql = (
            "sum by (slice, destination_version, response_code) "
            f"(increase(istio_requests_total{{{sel.istio}}}[{window}]))"
        )
        return Query("counts", promql, version_label="destination_version", code_label="response_code")
    promql = f"sum by (slice, version, code) (increase(model_requests_total{{{sel.modelrollout}}}[{window}]))"
    return Query("counts", promql)


def _latency_buckets_query(spec: ModelRolloutSpec, sel: _Selectors, window: str) -> Query:
    if spec.analysis.metrics.profile == "istio":
        promql = (
            "sum by (slice, destination_version, le) "
            f"(increase(istio_request_duration_milliseconds_bucket{{{sel.istio}}}[{window}]))"
        )
        return Query("buckets", promql, version_label="destination_version", scale=0.001)
    metric = f"model_request_duration_seconds_bucket{{{sel.modelrollout}}}"
    return Query("buckets", f"sum by (slice, version, le) (increase({metric}[{window}]))")


def _latency_mean_query(spec: ModelRolloutSpec, sel: _Selectors, window: str) -> Query:
    # increase() drops __name__, so each half is tagged with a `stat` label; `or` keeps both in one query.
    if spec.analysis.metrics.profile == "istio":
        base, selector, by, label, scale = (
            "istio_request_duration_milliseconds",
            sel.istio,
            "slice, destination_version",
            "destination_version",
            0.001,
        )
    else:
        base, selector, by, label, scale = (
            "model_request_duration_seconds",
            sel.modelrollout,
            "slice, version",
            "version",
            1.0,
        )
    halves = [
        f"label_replace(sum by ({by}) (increase({base}_{stat}{{{selector}}}[{window}])), "
        f'"stat", "{stat}", "", "")'
        for stat in ("sum", "count")
    ]
    return Query("mean", " or ".join(halves), version_label=label, scale=scale)


def _scores_query(sel: _Selectors, window: str) -> Query:
    # Istio knows nothing of predictions: both profiles read the serving library's score histogram.
    metric = f"model_prediction_score_bucket{{{sel.modelrollout}}}"
    return Query("scores", f"sum by (slice, version, le) (increase({metric}[{window}]))")


def _tally_query(metric: str, sel: _Selectors, window: str) -> Query:
    # Istio knows nothing of predictions or labels: both profiles read the serving library's counters.
    counter, label, hit = TALLIES[metric]
    promql = f"sum by (slice, version, {label}) (increase({counter}{{{sel.modelrollout}}}[{window}]))"
    return Query("tally", promql, tally_label=label, tally_hit=hit)


def custom_promql(template: str, *, namespace: str, model: str, window: str, versions: str) -> str:
    """Fills {namespace} {model} {window} {versions} of a custom query; other braces are PromQL's own.

    {versions} is the escaped regex alternation ready to sit inside a double-quoted string, e.g.
    version=~"{versions}".
    """
    values = {"namespace": namespace, "model": model, "window": window, "versions": versions}
    out = template
    for name, value in values.items():
        out = out.replace("{" + name + "}", value)
    return out


def _guard_query(
    spec: ModelRolloutSpec,
    guard: Guard,
    sel: _Selectors,
    namespace: str,
    stable: str,
    candidate: str,
    window: str,
) -> Query:
    if guard.query is not None:
        promql = custom_promql(
            guard.query,
            namespace=promql_string(namespace),
            model=promql_string(spec.model.name),
            window=window,
            versions=promql_string(versions_regex(stable, candidate)),
        )
        return Query("custom", promql)
    if guard.metric == "errorRate":
        return _counts_query(spec, sel, window)
    if guard.metric in LATENCY_QUANTILES:
        return _latency_buckets_query(spec, sel, window)
    if guard.metric == "latencyMean":
        return _latency_mean_query(spec, sel, window)
    if guard.metric in ("predictionPSI", "predictionKS"):
        return _scores_query(sel, window)
    if guard.metric in TALLIES:
        return _tally_query(guard.metric, sel, window)
    raise ValueError(f"guard {guard.name}: unknown metric {guard.metric!r} without a custom query")


BATCH_MATCHERS = "\x00matchers\x00"
_ISTIO_BATCH = "\x00istio\x00"
_ISTIO_SCOPE = ("destination_workload_namespace", "destination_canonical_service")
_BATCH_SELECTORS = _Selectors(modelrollout=BATCH_MATCHERS, istio=_ISTIO_BATCH)


def _shaped(query: Query, batch: Query, scope: tuple[str, str, str]) -> Query:
    """`query` with the shape of its batched form: the matchers left open, grouped by namespace and model too."""
    if query.kind == "custom" or "sum by (" not in batch.promql:
        return query  # custom text, or a form whose grouping cannot be widened: this rollout's own query
    labels = _ISTIO_SCOPE if _ISTIO_BATCH in batch.promql else ("namespace", "model")
    shape = batch.promql.replace("sum by (", f"sum by ({labels[0]}, {labels[1]}, ").replace(
        _ISTIO_BATCH, BATCH_MATCHERS
    )
    return replace(query, shape=shape, scope=scope, scope_labels=labels)


def batch_matchers(scope_labels: tuple[str, str], scopes: Sequence[tuple[str, str, str]]) -> str:
    """The label matchers selecting every rollout in `scopes` (a superset: answers are filtered per rollout)."""
    namespaces = promql_string(versions_regex(*sorted({s[0] for s in scopes})))
    models = promql_string(versions_regex(*sorted({s[1] for s in scopes})))
    versions = promql_string("|".join(sorted({v for s in scopes for v in s[2].split("|")})))
    if scope_labels == _ISTIO_SCOPE:
        return (
            f'reporter="destination",destination_workload_namespace=~"{namespaces}",'
            f'destination_canonical_service=~"{models}",destination_version=~"{versions}"'
        )
    return f'namespace=~"{namespaces}",model=~"{models}",version=~"{versions}"'


def plan_queries(
    spec: ModelRolloutSpec,
    namespace: str,
    phase: AnalysisPhase,
    stable: str,
    candidate: str,
    since: datetime,
    now: datetime,
) -> QueryPlan:
    """The queries of one tick: one per guard judged in `phase`, plus REQUESTS_KEY when custom guards need it.

    Threshold guards read the last `window`; sequential guards read everything since `since` (the start of
    the current step or shadow) so their evidence accumulates.
    """
    sel = _selectors(spec, namespace, stable, candidate)
    window = format_range(window_seconds(spec))
    since_window = format_range(sequential_window_seconds(since, now))
    queries: dict[str, Query] = {}
    guards = active_guards(spec, phase)
    scope = (namespace, spec.model.name, versions_regex(stable, candidate))
    for guard in guards:
        guard_window = since_window if guard.test == "sequential" else window
        queries[guard.name] = _shaped(
            _guard_query(spec, guard, sel, namespace, stable, candidate, guard_window),
            _guard_query(spec, guard, _BATCH_SELECTORS, namespace, stable, candidate, guard_window),
            scope,
        )
    if any(g.query is not None for g in guards):
        queries[REQUESTS_KEY] = _shaped(
            _counts_query(spec, sel, window), _counts_query(spec, _BATCH_SELECTORS, window), scope
        )
    return QueryPlan(queries=queries, window=window)


# Decoders ------------------------------------------------------------------------------------------------
def role_of(sample: Sample, query: Query, stable: str, candidate: str) -> Role | None:
    """Whether a sample is the candidate's ('canary') or stable's, by the query's version label."""
    return _role(sample, query.version_label, stable, candidate)


def _role(sample: Sample, label: str, stable: str, candidate: str) -> Role | None:
    version = sample.labels.get(label)
    if version is None and label == "version":
        version = sample.labels.get("destination_version")  # custom queries may keep Istio's label
    if version == candidate:
        return "canary"
    if version == stable:
        return "stable"
    return None


def _keyed(
    samples: Sequence[Sample], query: Query, stable: str, candidate: str, slices: set[str]
) -> list[tuple[SliceKey, Sample]]:
    """Samples of known slices and of the two versions, with their (slice, role); the rest is ignored."""
    out: list[tuple[SliceKey, Sample]] = []
    for sample in samples:
        slice_name = sample.labels.get("slice")
        role = _role(sample, query.version_label, stable, candidate)
        if slice_name in slices and role is not None:
            out.append(((slice_name, role), sample))
    return out


def _is_error(code: str | None) -> bool:
    try:
        return code is not None and int(code) >= 500
    except ValueError:
        return False


def decode_counts(
    samples: Sequence[Sample], query: Query, stable: str, candidate: str, slices: set[str]
) -> dict[SliceKey, Counts]:
    """Requests and errors (code >= 500) per (slice, role); NaN values propagate (judged as missing)."""
    requests: dict[SliceKey, float] = {}
    errors: dict[SliceKey, float] = {}
    for key, sample in _keyed(samples, query, stable, candidate, slices):
        requests[key] = requests.get(key, 0.0) + sample.value
        errors.setdefault(key, 0.0)
        if _is_error(sample.labels.get(query.code_label)):
            errors[key] += sample.value
    return {key: Counts(requests=requests[key], errors=errors[key]) for key in requests}


def decode_tally(
    samples: Sequence[Sample], query: Query, stable: str, candidate: str, slices: set[str]
) -> dict[SliceKey, Tally]:
    """Events and hits (the query's tally label equal to its hit value) per (slice, role); NaN propagates."""
    totals: dict[SliceKey, float] = {}
    hits: dict[SliceKey, float] = {}
    for key, sample in _keyed(samples, query, stable, candidate, slices):
        totals[key] = totals.get(key, 0.0) + sample.value
        hits.setdefault(key, 0.0)
        if sample.labels.get(query.tally_label) == query.tally_hit:
            hits[key] += sample.value
    return {key: Tally(total=totals[key], hits=hits[key]) for key in totals}


def _le(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return float(text)  # accepts "+Inf"
    except ValueError:
        return None


def decode_buckets(
    samples: Sequence[Sample], query: Query, stable: str, candidate: str, slices: set[str]
) -> dict[SliceKey, dict[float, float]]:
    """Cumulative bucket counts per (slice, role), bounds converted to seconds for latency histograms."""
    out: dict[SliceKey, dict[float, float]] = {}
    for key, sample in _keyed(samples, query, stable, candidate, slices):
        le = _le(sample.labels.get("le"))
        if le is None:
            continue
        bound = le * query.scale if math.isfinite(le) else le
        histogram = out.setdefault(key, {})
        histogram[bound] = histogram.get(bound, 0.0) + sample.value
    return out


def decode_mean(
    samples: Sequence[Sample], query: Query, stable: str, candidate: str, slices: set[str]
) -> dict[SliceKey, tuple[float, float]]:
    """(sum in seconds, count) per (slice, role); a side missing either half is left out."""
    sums: dict[SliceKey, float] = {}
    counts: dict[SliceKey, float] = {}
    for key, sample in _keyed(samples, query, stable, candidate, slices):
        stat = sample.labels.get("stat")
        if stat == "sum":
            sums[key] = sums.get(key, 0.0) + sample.value * query.scale
        elif stat == "count":
            counts[key] = counts.get(key, 0.0) + sample.value
    return {key: (sums[key], counts[key]) for key in sums.keys() & counts.keys()}


def decode_values(
    samples: Sequence[Sample], query: Query, stable: str, candidate: str, slices: set[str]
) -> dict[SliceKey, list[float]]:
    """Every value a custom query returned per (slice, role); more than one means it was not aggregated."""
    out: dict[SliceKey, list[float]] = {}
    for key, sample in _keyed(samples, query, stable, candidate, slices):
        out.setdefault(key, []).append(sample.value)
    return out
