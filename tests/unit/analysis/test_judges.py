from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelrollout.analysis import judges
from modelrollout.api.guards import Guard, Thresholds
from modelrollout.api.status import Samples
from tests.support.samples import make_spec

ENOUGH = Samples(stable=1000, canary=500)


def guard(**fields: object) -> Guard:
    return Guard.model_validate({"name": "g", "metric": "errorRate", **fields})


def test_absolute_max_fail_and_pass_with_evidence() -> None:
    g = guard(max=0.05)
    fail = judges.absolute_max(g, 0.05, 0.08, stable=0.01, samples=ENOUGH)
    assert (fail.verdict, fail.bound, fail.threshold, fail.canary, fail.stable) == (
        "Fail",
        "max",
        0.05,
        0.08,
        0.01,
    )
    assert fail.reason == "g 0.08 > max 0.05"
    assert fail.samples == ENOUGH
    assert fail.failures == 0
    assert judges.absolute_max(g, 0.05, 0.05).verdict == "Pass"  # a tie is within the bound


def test_absolute_min() -> None:
    g = guard(min=0.9)
    assert judges.absolute_min(g, 0.9, 0.85).verdict == "Fail"
    assert judges.absolute_min(g, 0.9, 0.85).reason == "g 0.85 < min 0.9"
    assert judges.absolute_min(g, 0.9, 0.95).verdict == "Pass"


def test_ratio_to_stable_matches_the_design_example() -> None:
    g = guard(name="error-ratio", max_ratio_to_stable=1.05)
    verdict = judges.ratio_to_stable(g, 1.05, 0.08, 0.011, samples=ENOUGH)
    assert verdict.verdict == "Fail"
    assert verdict.bound == "maxRatioToStable"
    assert verdict.threshold == pytest.approx(0.01155)
    assert verdict.reason.startswith("error-ratio 0.08 > 0.011")
    assert verdict.reason.endswith("(1.05 x stable 0.011)")
    assert judges.ratio_to_stable(g, 1.05, 0.0115, 0.011).verdict == "Pass"


def test_ratio_to_stable_uses_the_floor_when_stable_is_zero() -> None:
    g = guard(max_ratio_to_stable=2.0)
    floor = judges.ratio_floor("errorRate", 2000)
    assert floor == 1 / 2000
    verdict = judges.ratio_to_stable(g, 2.0, 0.0009, 0.0, floor=floor)
    assert verdict.verdict == "Pass"
    assert verdict.threshold == pytest.approx(0.001)
    assert "floor 0.0005, stable 0" in verdict.reason
    assert judges.ratio_to_stable(g, 2.0, 0.0011, 0.0, floor=floor).verdict == "Fail"
    assert judges.ratio_floor("latencyP99", 2000) == judges.DEFAULT_RATIO_FLOOR


def test_delta_to_stable() -> None:
    g = guard(metric="latencyP99", max_delta_to_stable=0.05)
    fail = judges.delta_to_stable(g, 0.05, 0.41, 0.3)
    assert fail.verdict == "Fail"
    assert fail.threshold == pytest.approx(0.35)
    assert fail.reason == "g 0.41 > 0.35 (stable 0.3 + 0.05)"
    assert judges.delta_to_stable(g, 0.05, 0.34, 0.3).verdict == "Pass"


def test_judge_thresholds_names_the_first_failing_bound() -> None:
    g = guard(max=0.05, max_ratio_to_stable=1.1)
    verdict = judges.judge_thresholds(
        g, g.thresholds_for("x"), canary=0.02, stable=0.01, samples=ENOUGH, min_samples=100
    )
    assert (verdict.verdict, verdict.bound) == ("Fail", "maxRatioToStable")
    verdict = judges.judge_thresholds(
        g, g.thresholds_for("x"), canary=0.06, stable=0.1, samples=ENOUGH, min_samples=100
    )
    assert (verdict.verdict, verdict.bound) == ("Fail", "max")


def test_judge_thresholds_pass_reports_the_tightest_bound() -> None:
    g = guard(max=0.05, max_ratio_to_stable=2.0)
    verdict = judges.judge_thresholds(
        g, g.thresholds_for("x"), canary=0.019, stable=0.01, samples=ENOUGH, min_samples=100
    )
    assert (verdict.verdict, verdict.bound, verdict.threshold) == ("Pass", "maxRatioToStable", 0.02)


def test_per_slice_override_replaces_the_guards_thresholds() -> None:
    spec = make_spec(
        [
            {
                "name": "ratio",
                "metric": "errorRate",
                "maxRatioToStable": 1.5,
                "slices": {"android": {"maxRatioToStable": 1.05}},
            }
        ]
    )
    g = spec.analysis.guards[0]
    kwargs = {"canary": 0.012, "stable": 0.01, "samples": ENOUGH, "min_samples": 100}
    assert judges.judge_thresholds(g, g.thresholds_for("ios"), **kwargs).verdict == "Pass"  # type: ignore[arg-type]
    assert judges.judge_thresholds(g, g.thresholds_for("android"), **kwargs).verdict == "Fail"  # type: ignore[arg-type]


def test_required_samples_precedence() -> None:
    spec = make_spec(
        [
            {
                "name": "a",
                "metric": "errorRate",
                "max": 0.1,
                "minSamples": 50,
                "slices": {"ios": {"minSamples": 7}},
            },
            {"name": "b", "metric": "errorRate", "max": 0.1},
        ],
        min_samples=300,
    )
    a, b = spec.analysis.guards
    assert judges.required_samples(spec.analysis, a, "ios") == 7
    assert judges.required_samples(spec.analysis, a, "android") == 50
    assert judges.required_samples(spec.analysis, b, "ios") == 300


@pytest.mark.parametrize(
    ("fields", "canary", "stable", "samples", "needle"),
    [
        ({"max": 0.05}, 0.01, 0.01, Samples(stable=1000, canary=99), "too few samples"),
        ({"maxRatioToStable": 1.1}, 0.01, 0.01, Samples(stable=99, canary=1000), "too few samples"),
        ({"max": 0.05}, math.nan, 0.01, ENOUGH, "no usable candidate value (NaN)"),
        ({"max": 0.05}, None, 0.01, ENOUGH, "no usable candidate value (missing)"),
        ({"max": 0.05}, math.inf, 0.01, ENOUGH, "no usable candidate value"),
        ({"maxRatioToStable": 1.1}, 0.01, math.nan, ENOUGH, "no usable stable value"),
        ({"maxDeltaToStable": 0.1}, 0.01, None, ENOUGH, "no usable stable value"),
    ],
)
def test_missing_or_thin_data_is_inconclusive(
    fields: dict[str, float], canary: float | None, stable: float | None, samples: Samples, needle: str
) -> None:
    g = guard(**fields)
    verdict = judges.judge_thresholds(
        g, g.thresholds_for("x"), canary=canary, stable=stable, samples=samples, min_samples=100
    )
    assert verdict.verdict == "Inconclusive"
    assert needle in verdict.reason
    assert verdict.canary is None or math.isfinite(verdict.canary)


def test_absolute_guard_needs_only_candidate_samples() -> None:
    # A 100% step leaves stable with no traffic; an absolute bound can still pass on the candidate alone.
    g = guard(max=0.05)
    verdict = judges.judge_thresholds(
        g,
        g.thresholds_for("x"),
        canary=0.01,
        stable=None,
        samples=Samples(stable=0, canary=500),
        min_samples=100,
    )
    assert verdict.verdict == "Pass"


def test_comparative_metric_needs_both_sides_and_refuses_relative_bounds() -> None:
    psi = guard(metric="predictionPSI", max=0.2)
    thin = judges.judge_thresholds(
        psi,
        psi.thresholds_for("x"),
        canary=0.01,
        stable=None,
        samples=Samples(stable=50, canary=500),
        min_samples=100,
        comparative=True,
    )
    assert thin.verdict == "Inconclusive"
    # The API refuses a ratio on the guard itself; a per-slice override can still carry one.
    ratio = guard(metric="predictionPSI", max=0.2, slices={"x": {"maxRatioToStable": 1.2}})
    verdict = judges.judge_thresholds(
        ratio,
        ratio.thresholds_for("x"),
        canary=0.01,
        stable=None,
        samples=ENOUGH,
        min_samples=1,
        comparative=True,
    )
    assert verdict.verdict == "Inconclusive"
    assert "already compares" in verdict.reason


maybe_float = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True))


@given(
    canary=maybe_float,
    stable=maybe_float,
    stable_n=st.integers(0, 10_000),
    canary_n=st.integers(0, 10_000),
    min_samples=st.integers(1, 10_000),
    bounds=st.fixed_dictionaries(
        {},
        optional={
            "max": st.floats(-1e6, 1e6),
            "min": st.floats(-1e6, 1e6),
            "maxRatioToStable": st.floats(0.01, 100),
            "maxDeltaToStable": st.floats(0, 100),
        },
    )
    .filter(bool)
    .filter(lambda b: b.get("min", -math.inf) <= b.get("max", math.inf)),  # admission refuses min > max
)
def test_property_thin_or_unusable_data_never_passes(
    canary: float | None,
    stable: float | None,
    stable_n: int,
    canary_n: int,
    min_samples: int,
    bounds: dict[str, float],
) -> None:
    g = guard(**bounds)
    thresholds = g.thresholds_for("x")
    verdict = judges.judge_thresholds(
        g,
        thresholds,
        canary=canary,
        stable=stable,
        samples=Samples(stable=stable_n, canary=canary_n),
        min_samples=min_samples,
    )
    relative = thresholds.max_ratio_to_stable is not None or thresholds.max_delta_to_stable is not None
    unusable_canary = canary is None or not math.isfinite(canary) or canary_n < min_samples
    unusable_stable = stable is None or not math.isfinite(stable) or stable_n < min_samples
    if unusable_canary or (relative and unusable_stable):
        assert verdict.verdict == "Inconclusive"
    else:
        assert verdict.verdict in ("Pass", "Fail")


def test_thresholds_type_is_the_api_type() -> None:
    assert isinstance(guard(max=1.0).thresholds_for("x"), Thresholds)


def test_min_ratio_to_stable_bounds_a_higher_is_better_metric_from_below() -> None:
    g = guard(name="accuracy-drop", metric="accuracy", min_ratio_to_stable=0.95)
    fail = judges.min_ratio_to_stable(g, 0.95, 0.82, 0.9, samples=ENOUGH)
    assert (fail.verdict, fail.bound) == ("Fail", "minRatioToStable")
    assert fail.threshold == pytest.approx(0.855)
    assert fail.reason == "accuracy-drop 0.82 < 0.855 (0.95 x stable 0.9)"
    assert judges.min_ratio_to_stable(g, 0.95, 0.855, 0.9).verdict == "Pass"  # a tie is within the bound
    assert judges.min_ratio_to_stable(g, 0.95, 0.97, 0.9).verdict == "Pass"


def test_min_delta_to_stable_allows_a_drop_of_at_most_the_delta() -> None:
    g = guard(metric="accuracy", min_delta_to_stable=0.05)
    fail = judges.min_delta_to_stable(g, 0.05, 0.84, 0.9)
    assert (fail.verdict, fail.bound) == ("Fail", "minDeltaToStable")
    assert fail.threshold == pytest.approx(0.85)
    assert fail.reason == "g 0.84 < 0.85 (stable 0.9 - 0.05)"
    assert judges.min_delta_to_stable(g, 0.05, 0.86, 0.9).verdict == "Pass"


def test_lower_relative_bounds_need_stable_and_report_their_margin() -> None:
    g = guard(metric="accuracy", min_ratio_to_stable=0.95, min_delta_to_stable=0.1)
    thin = judges.judge_thresholds(
        g,
        g.thresholds_for("x"),
        canary=0.9,
        stable=0.9,
        samples=Samples(stable=10, canary=500),
        min_samples=100,
    )
    assert thin.verdict == "Inconclusive", "a bound relative to stable needs stable's samples too"
    passing = judges.judge_thresholds(
        g, g.thresholds_for("x"), canary=0.87, stable=0.9, samples=ENOUGH, min_samples=100
    )
    # 0.95 x 0.9 = 0.855 leaves 0.015 of room; 0.9 - 0.1 = 0.8 leaves 0.07: the ratio is the tighter one.
    assert (passing.verdict, passing.bound) == ("Pass", "minRatioToStable")
    failing = judges.judge_thresholds(
        g, g.thresholds_for("x"), canary=0.79, stable=0.9, samples=ENOUGH, min_samples=100
    )
    assert (failing.verdict, failing.bound) == ("Fail", "minRatioToStable")
    missing = judges.judge_thresholds(
        g, g.thresholds_for("x"), canary=0.9, stable=None, samples=ENOUGH, min_samples=100
    )
    assert missing.verdict == "Inconclusive"


def test_lower_relative_bounds_have_per_slice_overrides() -> None:
    g = guard(metric="accuracy", min_ratio_to_stable=0.95, slices={"android": {"minDeltaToStable": 0.02}})
    assert g.thresholds_for("ios").min_ratio_to_stable == 0.95
    android = g.thresholds_for("android")
    assert (android.min_ratio_to_stable, android.min_delta_to_stable) == (None, 0.02)
    verdict = judges.judge_thresholds(g, android, canary=0.87, stable=0.9, samples=ENOUGH, min_samples=100)
    assert (verdict.verdict, verdict.bound) == ("Fail", "minDeltaToStable")
