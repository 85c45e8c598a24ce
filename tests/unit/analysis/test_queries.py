from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from modelrollout.analysis import queries as q
from modelrollout.analysis.results import Sample
from tests.support.samples import CANDIDATE, STABLE, make_spec

NOW = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
SINCE = NOW - timedelta(seconds=90, milliseconds=200)
ALL_KINDS = [
    {"name": "error-rate", "metric": "errorRate", "max": 0.05},
    {"name": "errors-seq", "metric": "errorRate", "test": "sequential", "maxRatioToStable": 1.1},
    {"name": "p99", "metric": "latencyP99", "maxRatioToStable": 1.2},
    {"name": "mean", "metric": "latencyMean", "maxDeltaToStable": 0.05},
    {"name": "psi", "metric": "predictionPSI", "max": 0.2},
    {
        "name": "accuracy",
        "metric": "accuracy",
        "min": 0.9,
        "query": 'sum by (slice, version) (rate(hits{namespace="{namespace}",model="{model}",'
        'version=~"{versions}"}[{window}]))',
    },
]


def plan(
    spec_guards: list[dict[str, object]], slices: tuple[str, ...] = ("ios", "android"), **kw: object
) -> q.QueryPlan:
    spec = make_spec(spec_guards, slices=slices, **kw)  # type: ignore[arg-type]
    return q.plan_queries(spec, "ml", "canary", STABLE, CANDIDATE, SINCE, NOW)


def test_query_count_does_not_grow_with_slices() -> None:
    two = plan(ALL_KINDS, slices=("a", "b"))
    sixteen_names = tuple(f"segment-{i}" for i in range(16))
    sixteen = plan(ALL_KINDS, slices=sixteen_names)
    assert len(two.distinct()) == len(sixteen.distinct()) == len(ALL_KINDS)
    assert [x.promql for x in two.distinct()] == [x.promql for x in sixteen.distinct()]
    for query in sixteen.distinct():
        assert not any(name in query.promql for name in sixteen_names)
        assert "by (slice" in query.promql


def test_guards_with_identical_promql_share_one_query() -> None:
    shared = plan(
        [
            {"name": "error-rate", "metric": "errorRate", "max": 0.05},
            {"name": "error-ratio", "metric": "errorRate", "maxRatioToStable": 1.1},
        ]
    )
    assert len(shared.queries) == 2
    assert len(shared.distinct()) == 1


def test_custom_guard_without_error_rate_guard_costs_one_extra_count_query() -> None:
    custom = [g for g in ALL_KINDS if g["name"] == "accuracy"]
    alone = plan(custom)
    assert set(alone.queries) == {"accuracy", q.REQUESTS_KEY}
    assert len(alone.distinct()) == 2
    assert alone.queries[q.REQUESTS_KEY].kind == "counts"
    with_errors = plan([*custom, ALL_KINDS[0]])
    assert len(with_errors.distinct()) == 2  # the errorRate guard's counts serve the custom guard


def test_modelrollout_profile_templates() -> None:
    p = plan(ALL_KINDS)
    sel = 'namespace="ml",model="recommender",version=~"v1\\\\.4|v1\\\\.5"'  # regex-escaped dots, escaped again for PromQL
    assert p.window == "60s"  # 2 x 30s interval
    assert p.queries["error-rate"].promql == (
        f"sum by (slice, version, code) (increase(model_requests_total{{{sel}}}[60s]))"
    )
    assert p.queries["errors-seq"].promql == (
        f"sum by (slice, version, code) (increase(model_requests_total{{{sel}}}[91s]))"
    )
    assert p.queries["p99"].promql == (
        f"sum by (slice, version, le) (increase(model_request_duration_seconds_bucket{{{sel}}}[60s]))"
    )
    assert p.queries["mean"].promql == (
        "label_replace(sum by (slice, version) "
        f'(increase(model_request_duration_seconds_sum{{{sel}}}[60s])), "stat", "sum", "", "") '
        "or label_replace(sum by (slice, version) "
        f'(increase(model_request_duration_seconds_count{{{sel}}}[60s])), "stat", "count", "", "")'
    )
    assert p.queries["psi"].promql == (
        f"sum by (slice, version, le) (increase(model_prediction_score_bucket{{{sel}}}[60s]))"
    )


def test_custom_placeholders_are_substituted() -> None:
    p = plan(ALL_KINDS, window="45s")
    assert p.queries["accuracy"].promql == (
        'sum by (slice, version) (rate(hits{namespace="ml",model="recommender",'
        'version=~"v1\\\\.4|v1\\\\.5"}[45s]))'
    )
    assert p.queries["accuracy"].kind == "custom"


def test_istio_profile_templates() -> None:
    p = plan(ALL_KINDS, profile="istio")
    sel = (
        'reporter="destination",destination_workload_namespace="ml",destination_canonical_service="recommender",'
        'destination_version=~"v1\\\\.4|v1\\\\.5"'
    )
    counts = p.queries["error-rate"]
    assert counts.promql == (
        f"sum by (slice, destination_version, response_code) (increase(istio_requests_total{{{sel}}}[60s]))"
    )
    assert (counts.version_label, counts.code_label) == ("destination_version", "response_code")
    latency = p.queries["p99"]
    assert latency.promql == (
        "sum by (slice, destination_version, le) "
        f"(increase(istio_request_duration_milliseconds_bucket{{{sel}}}[60s]))"
    )
    assert latency.scale == 0.001
    assert "istio_request_duration_milliseconds_sum" in p.queries["mean"].promql
    assert p.queries["mean"].scale == 0.001
    # Istio has no prediction metrics: PSI reads the serving library's histogram in both profiles.
    assert p.queries["psi"].promql.startswith(
        "sum by (slice, version, le) (increase(model_prediction_score_bucket{"
    )


def test_guards_run_only_in_their_phases() -> None:
    spec = make_spec(
        [
            {"name": "shadow-only", "metric": "predictionPSI", "max": 0.2, "phases": ["shadow"]},
            {"name": "canary-only", "metric": "errorRate", "max": 0.05, "phases": ["canary"]},
        ]
    )
    assert set(q.plan_queries(spec, "ml", "shadow", STABLE, CANDIDATE, SINCE, NOW).queries) == {"shadow-only"}
    assert set(q.plan_queries(spec, "ml", "canary", STABLE, CANDIDATE, SINCE, NOW).queries) == {"canary-only"}


@pytest.mark.parametrize(
    ("window", "interval", "expected"),
    [(None, "30s", 60.0), (None, "2s", 10.0), ("1m30s", "30s", 90.0), ("1.5s", "1s", 1.5)],
)
def test_window(window: str | None, interval: str, expected: float) -> None:
    spec = make_spec([{"name": "g", "metric": "errorRate", "max": 0.1}], window=window, interval=interval)
    assert q.window_seconds(spec) == expected


def test_ranges_and_sequential_window() -> None:
    assert q.format_range(60) == "60s"
    assert q.format_range(0.5) == "500ms"
    with pytest.raises(ValueError, match="positive"):
        q.format_range(0)
    assert q.sequential_window_seconds(SINCE, NOW) == 91  # 90.2s rounds up
    assert q.sequential_window_seconds(NOW, NOW) == 1
    assert q.sequential_window_seconds(NOW + timedelta(seconds=5), NOW) == 1  # clock skew


def test_versions_regex_and_string_escaping() -> None:
    assert q.versions_regex("v1.2", "v1.3", "v1.2") == "v1\\.2|v1\\.3"
    assert q.versions_regex("2024-01-01") == "2024-01-01"
    assert q.promql_string('a"b\\c') == 'a\\"b\\\\c'


def _counts_query() -> q.Query:
    return q.Query("counts", "")


def test_decode_counts_sums_codes_and_ignores_foreign_series() -> None:
    samples = [
        Sample({"slice": "ios", "version": CANDIDATE, "code": "200"}, 90.0),
        Sample({"slice": "ios", "version": CANDIDATE, "code": "503"}, 6.0),
        Sample({"slice": "ios", "version": CANDIDATE, "code": "500"}, 4.0),
        Sample({"slice": "ios", "version": CANDIDATE, "code": "404"}, 5.0),
        Sample({"slice": "ios", "version": STABLE, "code": "200"}, 1000.0),
        Sample({"slice": "unknown", "version": CANDIDATE, "code": "503"}, 50.0),
        Sample({"slice": "ios", "version": "v0.9", "code": "503"}, 50.0),
        Sample({"version": CANDIDATE, "code": "503"}, 50.0),
    ]
    out = q.decode_counts(samples, _counts_query(), STABLE, CANDIDATE, {"ios", "default"})
    assert out == {("ios", "canary"): q.Counts(105.0, 10.0), ("ios", "stable"): q.Counts(1000.0, 0.0)}


def test_decode_counts_istio_labels() -> None:
    query = q.Query("counts", "", version_label="destination_version", code_label="response_code")
    samples = [Sample({"slice": "ios", "destination_version": CANDIDATE, "response_code": "502"}, 3.0)]
    assert q.decode_counts(samples, query, STABLE, CANDIDATE, {"ios"}) == {
        ("ios", "canary"): q.Counts(3.0, 3.0)
    }


def test_decode_buckets_parses_le_and_converts_milliseconds() -> None:
    query = q.Query("buckets", "", version_label="destination_version", scale=0.001)
    samples = [
        Sample({"slice": "ios", "destination_version": STABLE, "le": "250"}, 7.0),
        Sample({"slice": "ios", "destination_version": STABLE, "le": "+Inf"}, 9.0),
        Sample({"slice": "ios", "destination_version": STABLE, "le": "junk"}, 9.0),
        Sample({"slice": "ios", "destination_version": STABLE}, 9.0),
    ]
    assert q.decode_buckets(samples, query, STABLE, CANDIDATE, {"ios"}) == {
        ("ios", "stable"): {0.25: 7.0, math.inf: 9.0}
    }


def test_decode_mean_needs_both_halves() -> None:
    query = q.Query("mean", "", scale=0.001)
    samples = [
        Sample({"slice": "ios", "version": STABLE, "stat": "sum"}, 5000.0),
        Sample({"slice": "ios", "version": STABLE, "stat": "count"}, 100.0),
        Sample({"slice": "ios", "version": CANDIDATE, "stat": "sum"}, 5000.0),
    ]
    assert q.decode_mean(samples, query, STABLE, CANDIDATE, {"ios"}) == {("ios", "stable"): (5.0, 100.0)}


def test_decode_values_keeps_duplicates_for_the_judge_to_refuse() -> None:
    samples = [
        Sample({"slice": "ios", "version": CANDIDATE, "pod": "a"}, 0.9),
        Sample({"slice": "ios", "version": CANDIDATE, "pod": "b"}, 0.8),
        Sample({"slice": "ios", "destination_version": STABLE}, 0.95),
    ]
    out = q.decode_values(samples, q.Query("custom", ""), STABLE, CANDIDATE, {"ios"})
    assert out == {("ios", "canary"): [0.9, 0.8], ("ios", "stable"): [0.95]}


def test_null_predictions_and_accuracy_read_the_serving_counters_in_both_profiles() -> None:
    guards = [
        {"name": "nulls", "metric": "nullPredictionRate", "max": 0},
        {"name": "accuracy", "metric": "accuracy", "minRatioToStable": 0.95, "phases": ["canary"]},
    ]
    sel = 'namespace="ml",model="recommender",version=~"v1\\\\.4|v1\\\\.5"'
    for profile in ("modelrollout", "istio"):
        p = plan(guards, profile=profile)
        nulls, accuracy = p.queries["nulls"], p.queries["accuracy"]
        assert nulls.promql == (
            f"sum by (slice, version, prediction) (increase(model_predictions_total{{{sel}}}[60s]))"
        )
        assert (nulls.kind, nulls.tally_label, nulls.tally_hit) == ("tally", "prediction", "null")
        assert accuracy.promql == (
            f"sum by (slice, version, outcome) (increase(model_feedback_total{{{sel}}}[60s]))"
        )
        assert (accuracy.tally_label, accuracy.tally_hit) == ("outcome", "correct")
        assert nulls.version_label == "version"


def test_decode_tally_counts_hits_and_totals_per_slice_and_version() -> None:
    query = q.Query("tally", "", tally_label="outcome", tally_hit="correct")
    samples = [
        Sample({"slice": "ios", "version": "v1", "outcome": "correct"}, 90.0),
        Sample({"slice": "ios", "version": "v1", "outcome": "incorrect"}, 10.0),
        Sample({"slice": "ios", "version": "v2", "outcome": "incorrect"}, 5.0),
        Sample({"slice": "ios", "version": "v9", "outcome": "correct"}, 7.0),  # neither version
        Sample({"slice": "elsewhere", "version": "v1", "outcome": "correct"}, 7.0),  # no such slice
    ]
    found = q.decode_tally(samples, query, "v1", "v2", {"ios", "default"})
    assert found == {("ios", "stable"): q.Tally(100.0, 90.0), ("ios", "canary"): q.Tally(5.0, 0.0)}
