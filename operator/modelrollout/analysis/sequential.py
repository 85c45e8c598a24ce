"""An anytime-valid sequential test on error counts: check every tick without inflating false rollbacks.

Idea (in the spirit of the Poisson/multinomial e-processes for software canaries of Lindon, Sanden and
Shirikian, "Rapid Regression Detection in Software Deployments through Sequential Testing", KDD 2022;
derived here, not copied):

Ratio test. Given which requests went to which version (routing does not look at outcomes), canary errors
and stable errors are, for rare errors, independent Poisson counts with means n_c * p_c and n_s * p_s.
Conditioned on their total, each error lands on the canary independently with probability
theta = n_c p_c / (n_c p_c + n_s p_s). The null "canary rate <= r x stable rate" is theta <= theta0 with
odds(theta0) = r * n_c / n_s. For any alternative theta1 >= theta0 the likelihood ratio
(theta1/theta0)^x_c ((1-theta1)/(1-theta0))^x_s is a nonnegative supermartingale in the errors under every
theta <= theta0 (one error multiplies it by a factor whose mean is linear in theta and equals 1 at theta0).
An average over a fixed grid of alternatives (odds(theta0) times 1.1 ... 20) is one too, so by Ville's
inequality P(ever >= 1/alpha) <= alpha: checking on every tick is free.

Absolute test (when `max` is set). Each canary request is a Bernoulli trial; the same construction over
alternatives p1 > max gives (p1/max)^x_c ((1-p1)/(1-max))^(n_c-x_c). This one is exact (no Poisson step).
With both, their mean is the e-process: under the intersection of both nulls it is still a supermartingale,
and rejecting at mean >= 1/alpha is at least as powerful as splitting alpha in two.

Stateless: both statistics depend only on the cumulative counts since the start of the step (or shadow),
so a restarted operator computes the same e-value. The one approximation is theta0, computed from the
cumulative request split instead of per error; within one step the canary weight is fixed, so the split is
stable. Bounds min and maxDeltaToStable are not part of the test (they would need another construction).
Alpha is split across slices (Bonferroni): alpha_slice = analysis.alpha / number of slices.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from modelrollout.analysis.judges import fmt, inconclusive
from modelrollout.api.guards import Guard, Thresholds
from modelrollout.api.spec import ModelRolloutSpec
from modelrollout.api.status import GuardVerdict, Samples

_GRID_POINTS = 12
ALTERNATIVES: tuple[float, ...] = tuple(
    1.1 * (20.0 / 1.1) ** (i / (_GRID_POINTS - 1)) for i in range(_GRID_POINTS)
)
"""Odds multipliers of the alternatives mixed with equal weight: from a 10% to a 20x worse canary."""


@dataclass(frozen=True)
class ErrorCounts:
    """Requests and errors of one version since the start of the step, as whole numbers."""

    requests: int
    errors: int

    @property
    def rate(self) -> float:
        return self.errors / self.requests if self.requests > 0 else math.nan

    @classmethod
    def from_floats(cls, requests: float, errors: float) -> ErrorCounts:
        """Rounds increase() results (extrapolated, so fractional) to counts with 0 <= errors <= requests."""
        whole = max(0, round(requests))
        return cls(requests=whole, errors=min(whole, max(0, round(errors))))


def _log_mean_exp(values: Iterable[float]) -> float:
    items = list(values)
    top = max(items)
    if math.isinf(top):
        return top
    return top + math.log(sum(math.exp(v - top) for v in items) / len(items))


def _log_lr(successes: int, trials: int, null_odds: float, multiplier: float) -> float:
    """log likelihood ratio of `successes` in `trials` draws: odds `multiplier` x null_odds against null_odds.

    Written with odds and log1p so it stays finite when one side dwarfs the other (odds near 0 or huge).
    """
    return successes * math.log(multiplier) + trials * (
        math.log1p(null_odds) - math.log1p(multiplier * null_odds)
    )


def ratio_log_evalue(canary: ErrorCounts, stable: ErrorCounts, ratio: float = 1.0) -> float:
    """log of the e-value against "canary error rate <= ratio x stable error rate" (0: no evidence)."""
    errors = canary.errors + stable.errors
    if canary.requests <= 0 or stable.requests <= 0 or errors == 0:
        return 0.0
    null_odds = ratio * canary.requests / stable.requests
    return _log_mean_exp(_log_lr(canary.errors, errors, null_odds, m) for m in ALTERNATIVES)


def absolute_log_evalue(canary: ErrorCounts, max_rate: float) -> float:
    """log of the e-value against "canary error rate <= max_rate", from the candidate's requests alone."""
    if canary.requests <= 0 or max_rate >= 1.0:
        return 0.0
    if max_rate <= 0.0:
        return math.inf if canary.errors > 0 else 0.0
    null_odds = max_rate / (1.0 - max_rate)
    return _log_mean_exp(_log_lr(canary.errors, canary.requests, null_odds, m) for m in ALTERNATIVES)


def alpha_per_slice(spec: ModelRolloutSpec) -> float:
    """analysis.alpha split evenly across the slices judged (declared slices and 'default') and across the
    stages (shadow, and each canary step or the blue-green bake): each stage starts a fresh test, so without the split a rollout with
    shadow and three steps could spend up to four times its budget on false rollbacks (Bonferroni)."""
    live = len(spec.strategy.steps()) or 1  # canary steps, or the blue-green bake
    stages = live + (1 if spec.strategy.shadow is not None else 0)
    return spec.analysis.alpha / (len(spec.slice_names()) * stages)


def sequential_errors(
    guard: Guard,
    thresholds: Thresholds,
    *,
    canary: ErrorCounts | None,
    stable: ErrorCounts | None,
    alpha: float,
    min_samples: int,
) -> GuardVerdict:
    """Fail once the e-value reaches 1/alpha (at any sample size: the test is valid at every look);
    otherwise Pass with at least `min_samples` requests on each version, else Inconclusive."""
    samples = Samples(
        stable=stable.requests if stable is not None else 0,
        canary=canary.requests if canary is not None else 0,
    )
    if canary is None or stable is None:
        missing = "candidate" if canary is None else "stable"
        return inconclusive(guard, f"no request counts for the {missing} version", samples=samples)
    # Test what the guard states: a ratio to stable, an absolute bound, or both (the mean of two e-values is an
    # e-value for the intersection). A guard with neither asks that the candidate be no worse than stable.
    ratio = thresholds.max_ratio_to_stable
    if ratio is None and thresholds.max is None:
        ratio = 1.0
    relative_bound = (ratio or 0.0) * max(stable.rate, 0.0) if stable.requests > 0 else math.inf
    if thresholds.max is None:
        assert ratio is not None
        log_e, threshold = ratio_log_evalue(canary, stable, ratio), relative_bound
        null = f"canary <= {fmt(ratio)} x stable"
    elif ratio is None:
        log_e, threshold = absolute_log_evalue(canary, thresholds.max), thresholds.max
        null = f"canary <= {fmt(thresholds.max)}"
    else:
        log_e = _log_mean_exp(
            [ratio_log_evalue(canary, stable, ratio), absolute_log_evalue(canary, thresholds.max)]
        )
        threshold = min(relative_bound, thresholds.max)
        null = f"canary <= {fmt(ratio)} x stable and <= {fmt(thresholds.max)}"
    e_value = math.exp(min(log_e, 700.0))
    limit = 1.0 / alpha
    failed = log_e >= math.log(limit)
    evidence = (
        f"canary {canary.errors}/{canary.requests} errors ({fmt(canary.rate)}) vs stable "
        f"{stable.errors}/{stable.requests} ({fmt(stable.rate)}), H0 {null}"
    )
    if not failed and (canary.requests < min_samples or stable.requests < min_samples):
        return inconclusive(
            guard,
            f"too few samples (canary {canary.requests}, stable {stable.requests}; need {min_samples} each); "
            f"e-value {fmt(e_value)} < {fmt(limit)}",
            stable=stable.rate,
            canary=canary.rate,
            samples=samples,
        )
    op = ">=" if failed else "<"
    return GuardVerdict(
        name=guard.name,
        metric=guard.metric,
        verdict="Fail" if failed else "Pass",
        stable=stable.rate if math.isfinite(stable.rate) else None,
        canary=canary.rate if math.isfinite(canary.rate) else None,
        threshold=threshold if math.isfinite(threshold) else None,
        bound="sequential",
        samples=samples,
        reason=f"{guard.name} e-value {fmt(e_value)} {op} {fmt(limit)} (1/alpha per slice and stage): {evidence}",
    )
