from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelrollout.analysis.queries import REQUESTS_KEY
from modelrollout.analysis.results import QueryOutcome, Sample, Unavailable
from modelrollout.analysis.verdicts import judge, slice_verdict
from modelrollout.api.status import GuardVerdict
from tests.support.samples import CANDIDATE, STABLE, buckets, counts, make_spec, values

NOW = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
INF = math.inf
C, S = CANDIDATE, STABLE

ERROR_GUARDS = [
    {"name": "error-rate", "metric": "errorRate", "max": 0.05},
    {
        "name": "error-ratio",
        "metric": "errorRate",
        "maxRatioToStable": 1.1,
        "slices": {"android": {"maxRatioToStable": 1.05}},
    },
]


def latency(total: float, shift: float = 0.0) -> dict[float, float]:
    """A latency histogram of `total` requests; `shift` moves mass to the slowest finite bucket."""
    return {
        0.1: total * (0.5 - shift),
        0.25: total * (0.9 - shift),
        0.5: total * (0.99 - shift),
        1.0: total,
        INF: total,
    }


def test_one_failing_slice_is_named_with_its_evidence() -> None:
    spec = make_spec(ERROR_GUARDS)
    data = counts(
        {("ios", S): (2000, 20), ("ios", C): (500, 5), ("android", S): (2000, 22), ("android", C): (500, 40)}
    )
    result = judge(spec, "canary", S, C, {"error-rate": data, "error-ratio": data}, NOW)
    assert list(result.slices) == ["ios", "android", "default"]
    assert result.failing() == ["android"]
    assert result.inconclusive() == ["default"]
    assert result.slices["ios"].verdict == "Pass"
    android = {g.name: g for g in result.slices["android"].guards}
    ratio = android["error-ratio"]
    assert (ratio.verdict, ratio.bound) == ("Fail", "maxRatioToStable")
    assert ratio.threshold == pytest.approx(1.05 * 0.011)
    assert ratio.stable == pytest.approx(0.011)
    assert ratio.canary == pytest.approx(0.08)
    assert (ratio.samples.stable, ratio.samples.canary) == (2000, 500)
    assert ratio.reason.endswith("(1.05 x stable 0.011)")
    assert android["error-rate"].verdict == "Fail"
    default = result.slices["default"].guards[0]
    assert default.reason == f"error-rate: no series for slice default, canary {C}"
    assert result.queries == 1  # one outcome object shared by both guards
    assert result.errors == []
    assert result.evaluated_at == NOW
    assert result.slices["android"].samples.canary == 500


def test_query_error_makes_every_slice_inconclusive_and_is_reported() -> None:
    spec = make_spec(ERROR_GUARDS)
    error = Unavailable("cannot reach http://127.0.0.1:1: ConnectError")
    result = judge(spec, "canary", S, C, {"error-rate": error, "error-ratio": error}, NOW, queries=1)
    assert {v.verdict for v in result.slices.values()} == {"Inconclusive"}
    assert result.errors == [
        "error-rate, error-ratio: Unavailable: cannot reach http://127.0.0.1:1: ConnectError"
    ]
    assert "query failed: Unavailable" in result.slices["ios"].guards[0].reason


def test_missing_outcome_is_inconclusive() -> None:
    result = judge(make_spec(ERROR_GUARDS[:1]), "canary", S, C, {}, NOW)
    assert result.slices["ios"].guards[0].reason == "error-rate: no query result"
    assert result.queries == 0


def test_latency_guards_in_istio_profile_use_seconds() -> None:
    spec = make_spec(
        [
            {"name": "p99", "metric": "latencyP99", "max": 0.6},
            {"name": "mean", "metric": "latencyMean", "maxRatioToStable": 1.2},
        ],
        profile="istio",
        slices=("ios",),
    )
    hist = buckets(
        {("ios", S): latency(1000), ("ios", C): latency(400, shift=0.3), ("default", S): latency(1000)},
        version_label="destination_version",
        le_scale=1000.0,
    )
    mean = [
        Sample({"slice": "ios", "destination_version": S, "stat": "sum"}, 100_000.0),  # ms: 0.1s average
        Sample({"slice": "ios", "destination_version": S, "stat": "count"}, 1000.0),
        Sample({"slice": "ios", "destination_version": C, "stat": "sum"}, 50_000.0),  # 0.125s average
        Sample({"slice": "ios", "destination_version": C, "stat": "count"}, 400.0),
    ]
    result = judge(spec, "canary", S, C, {"p99": hist, "mean": mean}, NOW)
    p99, mean_verdict = result.slices["ios"].guards
    assert p99.verdict == "Fail"  # 30% of the candidate sits in (0.5, 1.0] seconds
    assert p99.canary == pytest.approx(0.5 + 0.5 * (0.99 * 400 - 0.69 * 400) / (0.01 * 400 + 0.3 * 400))
    assert p99.stable == pytest.approx(0.5)
    assert mean_verdict.verdict == "Fail"
    assert mean_verdict.canary == pytest.approx(0.125)
    assert mean_verdict.threshold == pytest.approx(0.12)
    assert result.slices["default"].verdict == "Inconclusive"


def test_prediction_shift_fails_psi_and_ks_and_quotes_sampling_noise() -> None:
    spec = make_spec(
        [
            {"name": "psi", "metric": "predictionPSI", "max": 0.2},
            {"name": "ks", "metric": "predictionKS", "max": 0.1},
        ],
        slices=("ios", "android"),
    )
    same = {0.25: 250.0, 0.5: 500.0, 0.75: 750.0, INF: 1000.0}
    shifted = {0.25: 50.0, 0.5: 150.0, 0.75: 500.0, INF: 1000.0}
    scores = buckets(
        {
            ("ios", S): same,
            ("ios", C): {k: v / 2 for k, v in same.items()},
            ("android", S): same,
            ("android", C): shifted,
            ("default", S): same,
        }
    )
    result = judge(spec, "shadow", S, C, {"psi": scores, "ks": scores}, NOW)
    assert result.slices["ios"].verdict == "Pass"
    psi, ks = result.slices["android"].guards
    assert psi.verdict == "Fail"
    assert "minus sampling noise 0.006 at these counts" in psi.reason
    assert psi.stable is None
    assert ks.verdict == "Fail"
    assert ks.canary == pytest.approx(0.35)
    assert result.slices["default"].guards[0].reason == f"psi: no series for slice default, canary {C}"


def test_custom_guard_reads_samples_from_the_request_counts() -> None:
    custom = {"name": "accuracy", "metric": "accuracy", "min": 0.9, "query": "acc{versions}"}
    spec = make_spec([custom], slices=("ios", "android"), min_samples=100)
    outcomes: dict[str, QueryOutcome] = {
        "accuracy": [
            *values({("ios", S): 0.95, ("ios", C): 0.93, ("android", S): 0.95, ("android", C): 0.85}),
            Sample({"slice": "default", "version": C}, 0.9),
            Sample({"slice": "default", "version": C}, 0.8),
        ],
        REQUESTS_KEY: counts(
            {
                ("ios", S): (2000, 0),
                ("ios", C): (300, 0),
                ("android", S): (2000, 0),
                ("android", C): (300, 0),
                ("default", C): (300, 0),
            }
        ),
    }
    result = judge(spec, "canary", S, C, outcomes, NOW)
    ios = result.slices["ios"].guards[0]
    assert (ios.verdict, ios.samples.canary, ios.samples.stable) == ("Pass", 300, 2000)
    assert result.slices["android"].verdict == "Fail"
    assert "returned 2 series" in result.slices["default"].guards[0].reason
    outcomes[REQUESTS_KEY] = Unavailable("down")
    assert judge(spec, "canary", S, C, outcomes, NOW).slices["ios"].verdict == "Inconclusive"


def test_sequential_guard_through_judge_uses_the_per_slice_alpha() -> None:
    spec = make_spec(
        [{"name": "seq", "metric": "errorRate", "test": "sequential", "maxRatioToStable": 1.0}],
        slices=("ios", "android", "web"),
        alpha=0.08,
    )
    data = counts(
        {
            ("ios", S): (3600, 36),
            ("ios", C): (400, 4),
            ("android", S): (3600, 36),
            ("android", C): (400, 30),
            ("web", S): (3600.4, 35.6),  # increase() results are fractional
            ("web", C): (399.7, 4.2),
        }
    )
    result = judge(spec, "canary", S, C, {"seq": data}, NOW)
    assert result.failing() == ["android"]
    assert result.slices["ios"].verdict == "Pass"
    # 0.08 over 4 slices x 2 canary steps
    assert ">= 100 (1/alpha per slice and stage)" in result.slices["android"].guards[0].reason
    assert result.slices["web"].guards[0].samples.canary == 400


def test_nan_counts_are_inconclusive() -> None:
    spec = make_spec(
        [*ERROR_GUARDS[:1], {"name": "seq", "metric": "errorRate", "test": "sequential", "max": 0.1}]
    )
    data = counts({("ios", S): (2000, 20), ("ios", C): (math.nan, 5)})
    result = judge(spec, "canary", S, C, {"error-rate": data, "seq": data}, NOW)
    assert [g.verdict for g in result.slices["ios"].guards] == ["Inconclusive", "Inconclusive"]


def test_no_guard_in_phase_is_inconclusive_with_an_actionable_error() -> None:
    spec = make_spec([{"name": "psi", "metric": "predictionPSI", "max": 0.2, "phases": ["shadow"]}])
    result = judge(spec, "canary", S, C, {}, NOW)
    assert {v.verdict for v in result.slices.values()} == {"Inconclusive"}
    assert result.errors == ["no guard is judged in phase canary: add 'canary' to a guard's phases"]


def test_slice_verdict_aggregation() -> None:
    def g(verdict: str) -> GuardVerdict:
        return GuardVerdict.model_validate({"name": "g", "metric": "m", "verdict": verdict})

    assert slice_verdict([g("Pass"), g("Inconclusive"), g("Fail")]) == "Fail"
    assert slice_verdict([g("Pass"), g("Inconclusive")]) == "Inconclusive"
    assert slice_verdict([g("Pass"), g("Pass")]) == "Pass"
    assert slice_verdict([]) == "Inconclusive"


def test_result_serialises_without_nan_for_the_status() -> None:
    spec = make_spec(ERROR_GUARDS)
    data = counts({("ios", S): (2000, 20), ("ios", C): (math.nan, math.nan)})
    result = judge(spec, "canary", S, C, {"error-rate": data, "error-ratio": data}, NOW)
    text = json.dumps(result.wire(), allow_nan=False)
    assert '"failures": 0' in text


# Property: thin, missing, NaN or failed data never yields Pass ---------------------------------------------
GUARD_KINDS: dict[str, dict[str, Any]] = {
    "errorRate": {"name": "g", "metric": "errorRate", "max": 0.99, "maxRatioToStable": 100.0},
    "sequential": {"name": "g", "metric": "errorRate", "test": "sequential", "maxRatioToStable": 100.0},
    "latencyP99": {"name": "g", "metric": "latencyP99", "max": 100.0, "maxRatioToStable": 100.0},
    "latencyMean": {"name": "g", "metric": "latencyMean", "max": 100.0, "maxDeltaToStable": 100.0},
    "predictionPSI": {"name": "g", "metric": "predictionPSI", "max": 100.0},
    "predictionKS": {"name": "g", "metric": "predictionKS", "max": 1.0},
    "custom": {"name": "g", "metric": "quality", "max": 100.0, "maxRatioToStable": 100.0, "query": "q"},
}
DEFECTS = ("none", "missing", "nan", "few")
MIN_SAMPLES = 50


def _series(kind: str, slice_name: str, version: str, requests: float, value: float) -> list[Sample]:
    labels = {"slice": slice_name, "version": version}
    if kind in ("errorRate", "sequential"):
        return counts({(slice_name, version): (requests, 0.0)})
    if kind in ("latencyP99", "predictionPSI", "predictionKS"):
        return buckets(
            {(slice_name, version): {0.5: requests * 0.5 * value, 1.0: requests * value, INF: requests}}
        )
    if kind == "latencyMean":
        return [
            Sample({**labels, "stat": "sum"}, requests * value),
            Sample({**labels, "stat": "count"}, requests),
        ]
    return [Sample(labels, value)]


side = st.tuples(st.sampled_from(DEFECTS), st.integers(MIN_SAMPLES, 5000))


@settings(max_examples=300, deadline=None)
@given(
    kind=st.sampled_from(sorted(GUARD_KINDS)),
    data=st.dictionaries(
        st.sampled_from(["ios", "android", "default"]), st.tuples(side, side), min_size=3, max_size=3
    ),
    failed_query=st.booleans(),
)
def test_property_defective_data_never_passes(
    kind: str, data: dict[str, tuple[tuple[str, int], tuple[str, int]]], failed_query: bool
) -> None:
    spec = make_spec([GUARD_KINDS[kind]], min_samples=MIN_SAMPLES)
    samples: list[Sample] = []
    requests: list[Sample] = []
    for slice_name, sides in data.items():
        for version, (defect, n) in zip((C, S), sides, strict=True):
            if defect == "missing":
                continue
            n_used = float(MIN_SAMPLES - 1) if defect == "few" else float(n)
            value = math.nan if defect == "nan" else 0.9
            if kind in ("errorRate", "sequential") and defect == "nan":
                n_used = math.nan
            samples += _series(kind, slice_name, version, n_used, value)
            requests += counts(
                {(slice_name, version): (n_used if kind != "custom" or defect == "few" else n, 0.0)}
            )
    outcomes: dict[str, QueryOutcome] = {"g": Unavailable("down") if failed_query else samples}
    if kind == "custom":
        outcomes[REQUESTS_KEY] = requests
    result = judge(spec, "canary", S, C, outcomes, NOW)
    for slice_name, (canary_side, stable_side) in data.items():
        defective = failed_query or canary_side[0] != "none" or stable_side[0] != "none"
        if defective:
            assert result.slices[slice_name].verdict != "Pass", (slice_name, result.slices[slice_name].guards)


def test_psi_judges_the_shift_beyond_sampling_noise_so_small_samples_of_one_distribution_pass() -> None:
    import random

    spec = make_spec([{"name": "psi", "metric": "predictionPSI", "max": 0.1, "minSamples": 100}], slices=())
    rng = random.Random(7)
    bounds = [i / 20 for i in range(1, 20)] + [INF]

    def histogram(n: int) -> dict[float, float]:
        draws = [rng.betavariate(2, 5) for _ in range(n)]
        return {b: float(sum(1 for d in draws if d <= b)) for b in bounds}

    scores = buckets({("default", S): histogram(400), ("default", C): histogram(130)})
    psi = judge(spec, "canary", S, C, {"psi": scores}, NOW).slices["default"].guards[0]
    # raw PSI of two samples this small sits around 19 x (1/400 + 1/130) = 0.19, above the 0.1 bound
    assert psi.verdict == "Pass", psi.reason
    assert psi.canary is not None
    assert psi.canary < 0.1


def test_distributions_wait_for_a_window_that_lies_inside_the_stage() -> None:
    spec = make_spec([{"name": "psi", "metric": "predictionPSI", "max": 0.2}], slices=(), window="10s")
    same = {0.25: 250.0, 0.5: 500.0, 0.75: 750.0, INF: 1000.0}
    scores = buckets({("default", S): same, ("default", C): same})
    young = judge(spec, "shadow", S, C, {"psi": scores}, NOW, since=NOW - timedelta(seconds=6))
    psi = young.slices["default"].guards[0]
    assert psi.verdict == "Inconclusive"
    assert "full 10s window" in psi.reason
    grown = judge(spec, "shadow", S, C, {"psi": scores}, NOW, since=NOW - timedelta(seconds=11))
    assert grown.slices["default"].verdict == "Pass"


def tally(table: dict[tuple[str, str], tuple[float, float]], label: str, hit: str, miss: str) -> list[Sample]:
    """Samples of a tally query from {(slice, version): (total, hits)}."""
    out = []
    for (slice_name, version), (total, hits) in table.items():
        base = {"slice": slice_name, "version": version}
        out += [Sample({**base, label: hit}, hits), Sample({**base, label: miss}, total - hits)]
    return out


def test_null_predictions_in_one_slice_fail_it_with_the_share_as_evidence() -> None:
    spec = make_spec([{"name": "null-predictions", "metric": "nullPredictionRate", "max": 0}])
    data = tally(
        {
            ("ios", S): (800, 0),
            ("ios", C): (300, 0),
            ("android", S): (800, 0),
            ("android", C): (300, 60),
            ("default", S): (800, 0),
            ("default", C): (300, 0),
        },
        "prediction",
        "null",
        "value",
    )
    result = judge(spec, "canary", S, C, {"null-predictions": data}, NOW)
    assert result.failing() == ["android"]
    guard = result.slices["android"].guards[0]
    assert (guard.verdict, guard.bound, guard.canary, guard.stable) == ("Fail", "max", 0.2, 0.0)
    assert (guard.samples.stable, guard.samples.canary) == (800, 300)
    assert guard.reason == "null-predictions 0.2 > max 0"
    assert result.slices["ios"].verdict == "Pass"


def test_accuracy_from_labels_fails_a_relative_drop_and_needs_labels_on_both_versions() -> None:
    spec = make_spec(
        [{"name": "accuracy-drop", "metric": "accuracy", "minRatioToStable": 0.95, "phases": ["canary"]}],
        min_samples=200,
    )
    data = tally(
        {
            ("ios", S): (1000, 900),
            ("ios", C): (400, 362),
            ("android", S): (1000, 900),
            ("android", C): (400, 331),
            ("default", S): (50, 45),
            ("default", C): (400, 360),
        },
        "outcome",
        "correct",
        "incorrect",
    )
    result = judge(spec, "canary", S, C, {"accuracy-drop": data}, NOW)
    android = result.slices["android"].guards[0]
    assert (android.verdict, android.bound) == ("Fail", "minRatioToStable")
    assert android.canary == pytest.approx(331 / 400)
    assert android.threshold == pytest.approx(0.95 * 0.9)
    assert result.slices["ios"].verdict == "Pass"
    default = result.slices["default"].guards[0]
    assert default.verdict == "Inconclusive", "50 labels on stable are too few for a bound relative to it"
    assert "too few samples (canary 400, stable 50" in default.reason
