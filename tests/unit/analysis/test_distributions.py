from __future__ import annotations

import math

import pytest

from modelrollout.analysis import distributions as d

INF = math.inf
HIST = {0.1: 10.0, 0.5: 60.0, 1.0: 90.0, INF: 100.0}


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        (0.05, 0.05),  # rank 5 of 10 in [0, 0.1]
        (0.5, 0.42),  # rank 50: 40 of the 50 in (0.1, 0.5] -> 0.1 + 0.4 * 40/50
        (0.9, 1.0),  # rank 90 closes the (0.5, 1.0] bucket
        (0.99, 1.0),  # in the +Inf bucket: the highest finite bound
        (0.0, 0.0),
    ],
)
def test_quantile_interpolates_like_histogram_quantile(q: float, expected: float) -> None:
    assert d.quantile(q, HIST) == pytest.approx(expected)


def test_quantile_unordered_input_and_nonmonotonic_counts_are_repaired() -> None:
    # increase() extrapolates each bucket alone: 0.5 may read a hair below 0.1; the running max fixes it.
    hist = {INF: 100.0, 0.5: 9.9, 0.1: 10.0, 1.0: 90.0}
    assert d.quantile(0.05, hist) == pytest.approx(0.05)
    assert d.quantile(0.5, hist) == pytest.approx(0.5 + 0.5 * (50 - 10) / 80)


@pytest.mark.parametrize(
    "hist",
    [
        {},
        {0.1: 5.0, 1.0: 10.0},  # no +Inf bucket
        {0.1: 0.0, INF: 0.0},  # empty
        {0.1: math.nan, INF: 10.0},
        {INF: 10.0},  # only +Inf: no finite bound to report
    ],
)
def test_quantile_is_nan_without_usable_buckets(hist: dict[float, float]) -> None:
    assert math.isnan(d.quantile(0.99, hist))


def test_quantile_rejects_out_of_range_q() -> None:
    with pytest.raises(ValueError, match="quantile"):
        d.quantile(1.5, HIST)


def test_quantile_with_nonpositive_first_bound() -> None:
    assert d.quantile(0.1, {-1.0: 50.0, 1.0: 100.0, INF: 100.0}) == -1.0


def test_total_and_mean() -> None:
    assert d.total(HIST) == 100.0
    assert math.isnan(d.total({0.1: 3.0}))
    assert d.mean(12.0, 48.0) == 0.25
    assert math.isnan(d.mean(1.0, 0.0))
    assert math.isnan(d.mean(math.nan, 3.0))


def test_psi_by_hand_without_smoothing() -> None:
    stable = {1.0: 50.0, INF: 100.0}  # shares 0.5 / 0.5
    candidate = {1.0: 20.0, INF: 100.0}  # shares 0.2 / 0.8
    expected = (0.2 - 0.5) * math.log(0.2 / 0.5) + (0.8 - 0.5) * math.log(0.8 / 0.5)
    assert expected == pytest.approx(0.415888, abs=1e-6)
    assert d.psi(stable, candidate, smoothing=0.0) == pytest.approx(expected)


def test_psi_by_hand_with_default_smoothing() -> None:
    stable = {1.0: 50.0, INF: 100.0}
    candidate = {1.0: 20.0, INF: 100.0}
    s1, s2 = 50.5 / 101, 50.5 / 101
    c1, c2 = 20.5 / 101, 80.5 / 101
    expected = (c1 - s1) * math.log(c1 / s1) + (c2 - s2) * math.log(c2 / s2)
    assert d.psi(stable, candidate) == pytest.approx(expected)
    assert d.psi(stable, candidate) == pytest.approx(0.406287, abs=1e-6)


def test_psi_is_zero_for_equal_shares_and_finite_with_empty_buckets() -> None:
    assert d.psi({1.0: 30.0, INF: 60.0}, {1.0: 300.0, INF: 600.0}) == pytest.approx(0.0)
    value = d.psi({1.0: 0.0, INF: 100.0}, {1.0: 100.0, INF: 100.0})
    assert math.isfinite(value)
    assert value > 5


def test_psi_and_ks_compare_on_shared_bounds_only() -> None:
    stable = {0.5: 25.0, 1.0: 50.0, INF: 100.0}
    candidate = {1.0: 50.0, 2.0: 75.0, INF: 100.0}
    assert d.shared_buckets(stable, candidate) == 2
    assert d.psi(stable, candidate) == pytest.approx(0.0)
    assert d.ks(stable, candidate) == pytest.approx(0.0)


@pytest.mark.parametrize("fn", [d.psi, d.ks])
def test_distances_are_nan_when_a_side_is_empty_or_unusable(fn: object) -> None:
    assert callable(fn)
    assert math.isnan(fn({1.0: 0.0, INF: 0.0}, {1.0: 3.0, INF: 5.0}))
    assert math.isnan(fn({1.0: 3.0, INF: 5.0}, {1.0: 3.0}))


def test_ks_by_hand() -> None:
    stable = {0.5: 30.0, 1.0: 70.0, INF: 100.0}  # CDF 0.3, 0.7, 1
    candidate = {0.5: 10.0, 1.0: 40.0, INF: 50.0}  # CDF 0.2, 0.8, 1
    assert d.ks(stable, candidate) == pytest.approx(0.1)
    assert d.ks(stable, {0.5: 0.0, 1.0: 0.0, INF: 10.0}) == pytest.approx(0.7)


def test_psi_noise_floor() -> None:
    assert d.psi_noise_floor(20, 200, 200) == pytest.approx(19 * (1 / 200 + 1 / 200))
    assert math.isnan(d.psi_noise_floor(1, 100, 100))
    assert math.isnan(d.psi_noise_floor(10, 0, 100))
