from __future__ import annotations

import math
import random
from dataclasses import dataclass
from statistics import NormalDist

import pytest

from modelrollout.analysis import sequential as seq
from modelrollout.analysis.sequential import ErrorCounts
from modelrollout.api.guards import Guard
from modelrollout.api.spec import ShadowStrategy
from tests.support.samples import make_spec


def guard(**fields: object) -> Guard:
    return Guard.model_validate({"name": "seq", "metric": "errorRate", "test": "sequential", **fields})


def _binomial_pmf(n: int, k: int, p: float) -> float:
    return math.comb(n, k) * p**k * (1 - p) ** (n - k)


def test_ratio_evalue_matches_the_plain_mixture_formula() -> None:
    canary, stable = ErrorCounts(400, 12), ErrorCounts(3600, 11)
    theta0 = 400 / 4000
    direct = 0.0
    for m in seq.ALTERNATIVES:
        odds = m * theta0 / (1 - theta0)
        theta = odds / (1 + odds)
        direct += (theta / theta0) ** 12 * ((1 - theta) / (1 - theta0)) ** 11 / len(seq.ALTERNATIVES)
    assert math.exp(seq.ratio_log_evalue(canary, stable)) == pytest.approx(direct, rel=1e-9)


def test_ratio_evalue_has_mean_one_at_the_null_boundary_and_below_under_the_null() -> None:
    # The defining property of an e-value: E[E] <= 1 under the null; exactly 1 at theta0 for each mixture
    # component, below 1 when the canary is better than the bound. Enumerated exactly over all splits.
    n_c, n_s, errors = 100, 900, 25
    for ratio, p_share in ((1.0, 0.1), (2.0, 2 * 100 / (2 * 100 + 900)), (1.0, 0.05)):
        expectation = sum(
            _binomial_pmf(errors, k, p_share)
            * math.exp(seq.ratio_log_evalue(ErrorCounts(n_c, k), ErrorCounts(n_s, errors - k), ratio))
            for k in range(errors + 1)
        )
        if p_share < n_c * ratio / (n_c * ratio + n_s) - 1e-12:
            assert expectation < 1.0
        else:
            assert expectation == pytest.approx(1.0, rel=1e-9)


def test_absolute_evalue_has_mean_one_at_the_bound() -> None:
    n, p0 = 60, 0.05
    expectation = sum(
        _binomial_pmf(n, k, p0) * math.exp(seq.absolute_log_evalue(ErrorCounts(n, k), p0))
        for k in range(n + 1)
    )
    assert expectation == pytest.approx(1.0, rel=1e-9)


def test_evalues_without_evidence_and_at_extremes() -> None:
    assert seq.ratio_log_evalue(ErrorCounts(100, 0), ErrorCounts(900, 0)) == 0.0
    assert seq.ratio_log_evalue(ErrorCounts(0, 0), ErrorCounts(900, 5)) == 0.0
    assert seq.absolute_log_evalue(ErrorCounts(100, 3), 1.0) == 0.0
    assert seq.absolute_log_evalue(ErrorCounts(100, 1), 0.0) == math.inf
    assert seq.absolute_log_evalue(ErrorCounts(100, 0), 0.0) == 0.0
    # Huge imbalance stays finite (odds arithmetic with log1p).
    assert math.isfinite(seq.ratio_log_evalue(ErrorCounts(10**9, 10**6), ErrorCounts(1, 1)))
    assert (
        seq.ratio_log_evalue(ErrorCounts(100, 0), ErrorCounts(900, 50)) < 0
    )  # canary better: evidence for H0


def test_from_floats_rounds_and_clamps_increase_results() -> None:
    assert ErrorCounts.from_floats(99.6, 3.4) == ErrorCounts(100, 3)
    assert ErrorCounts.from_floats(10.2, 12.0) == ErrorCounts(10, 10)
    assert ErrorCounts.from_floats(-1.0, -1.0) == ErrorCounts(0, 0)


def test_alpha_is_split_across_all_slices_including_default_and_across_stages() -> None:
    spec = make_spec([{"name": "g", "metric": "errorRate", "max": 0.1}], slices=("a", "b", "c"), alpha=0.04)
    # 4 slices (a, b, c, default) x 2 canary steps, each step a fresh test
    assert seq.alpha_per_slice(spec) == pytest.approx(0.04 / 8)
    with_shadow = spec.model_copy(deep=True)
    with_shadow.strategy.shadow = ShadowStrategy(duration="1m")
    assert seq.alpha_per_slice(with_shadow) == pytest.approx(0.04 / 12)


def test_verdicts_carry_evidence() -> None:
    g = guard(max_ratio_to_stable=1.0)
    fail = seq.sequential_errors(
        g,
        g.thresholds_for("x"),
        canary=ErrorCounts(400, 30),
        stable=ErrorCounts(3600, 36),
        alpha=0.01,
        min_samples=200,
    )
    assert fail.verdict == "Fail"
    assert fail.bound == "sequential"
    assert (fail.samples.canary, fail.samples.stable) == (400, 3600)
    assert fail.canary == pytest.approx(0.075)
    assert fail.stable == pytest.approx(0.01)
    assert fail.threshold == pytest.approx(0.01)
    assert "e-value" in fail.reason
    assert ">= 100 (1/alpha per slice and stage)" in fail.reason
    assert "canary 30/400 errors" in fail.reason
    ok = seq.sequential_errors(
        g,
        g.thresholds_for("x"),
        canary=ErrorCounts(400, 4),
        stable=ErrorCounts(3600, 36),
        alpha=0.01,
        min_samples=200,
    )
    assert ok.verdict == "Pass"
    assert "< 100" in ok.reason


def test_too_few_samples_is_inconclusive_but_overwhelming_evidence_fails_early() -> None:
    g = guard(max_ratio_to_stable=1.0)
    thin = seq.sequential_errors(
        g,
        g.thresholds_for("x"),
        canary=ErrorCounts(50, 1),
        stable=ErrorCounts(450, 4),
        alpha=0.05,
        min_samples=200,
    )
    assert thin.verdict == "Inconclusive"
    assert "too few samples" in thin.reason
    # Anytime-valid: the e-value is a valid test at any sample size, so a clear regression fails at once.
    early = seq.sequential_errors(
        g,
        g.thresholds_for("x"),
        canary=ErrorCounts(50, 20),
        stable=ErrorCounts(450, 2),
        alpha=0.05,
        min_samples=200,
    )
    assert early.verdict == "Fail"
    missing = seq.sequential_errors(
        g, g.thresholds_for("x"), canary=None, stable=ErrorCounts(450, 2), alpha=0.05, min_samples=1
    )
    assert missing.verdict == "Inconclusive"
    assert "candidate" in missing.reason


def test_absolute_bound_joins_the_test_when_max_is_set() -> None:
    # Canary 4% errors, stable equally bad: the ratio test sees nothing, the absolute bound 1% does.
    both = guard(max=0.01)
    counts = {"canary": ErrorCounts(2000, 80), "stable": ErrorCounts(2000, 80)}
    verdict = seq.sequential_errors(both, both.thresholds_for("x"), **counts, alpha=0.05, min_samples=100)
    assert verdict.verdict == "Fail"
    assert verdict.threshold == pytest.approx(0.01)
    assert "<= 0.01" in verdict.reason
    ratio_only = guard(max_ratio_to_stable=1.0)
    verdict = seq.sequential_errors(
        ratio_only, ratio_only.thresholds_for("x"), **counts, alpha=0.05, min_samples=100
    )
    assert verdict.verdict == "Pass"


# Simulation -------------------------------------------------------------------------------------------------
def _binomial(rng: random.Random, n: int, p: float) -> int:
    """Exact binomial draw by geometric skips between successes: O(n p) instead of O(n)."""
    if n <= 0 or p <= 0.0:
        return 0
    if p >= 1.0:
        return n
    if p > 0.5:
        return n - _binomial(rng, n, 1.0 - p)
    log_q = math.log1p(-p)
    count, position = 0, 0
    while True:
        position += int(math.log(1.0 - rng.random()) / log_q) + 1
        if position > n:
            return count
        count += 1


@dataclass
class Outcome:
    sequential: list[int | None]  # per slice: first tick the sequential guard failed
    naive: list[int | None]  # per slice: first tick a per-tick z-test at the same alpha rejected


def _simulate_rollout(
    rng: random.Random, ticks: int, canary_rates: list[float], stable_rate: float, alpha: float
) -> Outcome:
    """One canary step: 200 requests per slice per tick, 10% routed to the candidate, judged every tick."""
    g = guard(max_ratio_to_stable=1.0)
    thresholds = g.thresholds_for("x")
    alpha_slice = alpha / len(canary_rates)
    z_crit = NormalDist().inv_cdf(1 - alpha_slice)
    totals = [[0, 0, 0, 0] for _ in canary_rates]
    out = Outcome([None] * len(canary_rates), [None] * len(canary_rates))
    for tick in range(ticks):
        for index, canary_rate in enumerate(canary_rates):
            n_c = _binomial(rng, 200, 0.1)
            t = totals[index]
            t[0] += n_c
            t[1] += _binomial(rng, n_c, canary_rate)
            t[2] += 200 - n_c
            t[3] += _binomial(rng, 200 - n_c, stable_rate)
            if out.sequential[index] is None:
                verdict = seq.sequential_errors(
                    g,
                    thresholds,
                    canary=ErrorCounts(t[0], t[1]),
                    stable=ErrorCounts(t[2], t[3]),
                    alpha=alpha_slice,
                    min_samples=100,
                )
                if verdict.verdict == "Fail":
                    out.sequential[index] = tick
            if out.naive[index] is None and t[0] and t[2]:
                pooled = (t[1] + t[3]) / (t[0] + t[2])
                spread = math.sqrt(pooled * (1 - pooled) * (1 / t[0] + 1 / t[2])) if 0 < pooled < 1 else 0.0
                if spread and (t[1] / t[0] - t[3] / t[2]) / spread > z_crit:
                    out.naive[index] = tick
    return out


ROLLOUTS, TICKS, ALPHA = 500, 60, 0.05
# If the true false-rollback rate were exactly alpha, the share observed in 500 rollouts exceeds
# alpha + 3 binomial standard deviations (0.05 + 0.029) with probability about 0.2%; the seed is fixed anyway.
TOLERANCE = 3 * math.sqrt(ALPHA * (1 - ALPHA) / ROLLOUTS)


@pytest.mark.parametrize(("seed", "error_rate"), [(11, 0.01), (12, 0.05)])
def test_simulated_false_rollback_rate_stays_within_alpha_when_checked_every_tick(
    seed: int, error_rate: float
) -> None:
    rng = random.Random(seed)
    runs = [_simulate_rollout(rng, TICKS, [error_rate] * 3, error_rate, ALPHA) for _ in range(ROLLOUTS)]
    false_rollbacks = sum(any(t is not None for t in run.sequential) for run in runs) / ROLLOUTS
    naive = sum(any(t is not None for t in run.naive) for run in runs) / ROLLOUTS
    print(
        f"error rate {error_rate}: false-rollback rate {false_rollbacks:.3f} "
        f"(naive per-tick z-test {naive:.3f})"
    )
    assert false_rollbacks <= ALPHA + TOLERANCE
    # The simulation can tell a valid test from an invalid one: peeking at a fixed-sample test every tick
    # inflates its error far beyond alpha.
    assert naive > ALPHA + TOLERANCE


def test_simulated_power_against_a_3x_error_regression_in_one_slice() -> None:
    rng = random.Random(13)
    runs = [_simulate_rollout(rng, TICKS, [0.01, 0.03, 0.01], 0.01, ALPHA) for _ in range(ROLLOUTS)]
    detected = [run.sequential[1] for run in runs if run.sequential[1] is not None]
    power = len(detected) / ROLLOUTS
    median_tick = sorted(detected)[len(detected) // 2] + 1
    healthy_failed = (
        sum(run.sequential[0] is not None or run.sequential[2] is not None for run in runs) / ROLLOUTS
    )
    print(
        f"power {power:.3f}, median detection at tick {median_tick}, "
        f"healthy slices failed {healthy_failed:.3f}"
    )
    assert power >= 0.9
    assert median_tick <= 30
    assert healthy_failed <= ALPHA + TOLERANCE


def _judge(g: Guard, canary: ErrorCounts, stable: ErrorCounts) -> str:
    verdict = seq.sequential_errors(
        g, g.thresholds_for("ios"), canary=canary, stable=stable, alpha=0.01, min_samples=100
    )
    return verdict.verdict


def test_a_sequential_guard_tests_the_bounds_it_states() -> None:
    worse_than_stable_but_under_max = (ErrorCounts(2000, 40), ErrorCounts(8000, 16))  # 2% vs 0.2%
    assert _judge(guard(max=0.05), *worse_than_stable_but_under_max) == "Pass"
    assert _judge(guard(maxRatioToStable=2.0), *worse_than_stable_but_under_max) == "Fail"
    assert _judge(guard(max=0.05, maxRatioToStable=2.0), *worse_than_stable_but_under_max) == "Fail"
    over_max_like_stable = (ErrorCounts(2000, 200), ErrorCounts(8000, 800))  # 10% on both
    assert _judge(guard(max=0.05), *over_max_like_stable) == "Fail"
    assert _judge(guard(maxRatioToStable=1.5), *over_max_like_stable) == "Pass"
