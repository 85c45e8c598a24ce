"""Pure statistics on classic Prometheus histograms: quantiles, PSI and KS from cumulative buckets.

A histogram here is a mapping from a bucket's upper bound `le` (a float; `+Inf` included) to the cumulative
count of observations <= le, as `increase(..._bucket[w])` returns it per series. Missing or inconsistent data
gives NaN, which the judges treat as missing (Inconclusive), never as a value.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping

Histogram = Mapping[float, float]
"""Cumulative bucket counts keyed by upper bound (le)."""

DEFAULT_PSI_SMOOTHING = 0.5
"""Pseudo-count added to every bucket of both sides before PSI (additive, Jeffreys-style smoothing).

An empty bucket on one side would make PSI infinite; half a count keeps it finite while moving a bucket's
share by at most 0.5/N, negligible once each side has minSamples (default 200) observations. Smoothing does
not remove sampling noise: see `psi_noise_floor`.
"""


def _sorted(histogram: Histogram) -> list[tuple[float, float]] | None:
    """Buckets in bound order with counts made monotonic, or None when unusable (no +Inf, NaN counts)."""
    if not histogram or math.inf not in histogram:
        return None
    items = sorted(histogram.items())
    if any(math.isnan(le) or math.isnan(count) or math.isinf(count) for le, count in items):
        return None
    out: list[tuple[float, float]] = []
    running = 0.0
    for le, count in items:
        # increase() extrapolates each bucket series on its own, so neighbours can cross by a hair;
        # the running maximum restores a valid cumulative shape, as histogram_quantile does.
        running = max(running, count, 0.0)
        out.append((le, running))
    return out


def total(histogram: Histogram) -> float:
    """Observations in the histogram (the +Inf bucket), NaN when there is no usable +Inf bucket."""
    buckets = _sorted(histogram)
    return math.nan if buckets is None else buckets[-1][1]


def quantile(q: float, histogram: Histogram) -> float:
    """The q-quantile by linear interpolation inside the bucket holding it, like PromQL histogram_quantile.

    The first bucket's lower bound is 0 (unless its upper bound is <= 0); a quantile falling in the +Inf
    bucket is the highest finite bound. NaN when the histogram is empty or has no +Inf bucket.
    """
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile must be in [0, 1], got {q}")
    buckets = _sorted(histogram)
    if buckets is None or len(buckets) < 2:
        return math.nan
    count = buckets[-1][1]
    if count <= 0:
        return math.nan
    rank = q * count
    index = next(i for i, (_, cumulative) in enumerate(buckets) if cumulative >= rank)
    upper, upper_count = buckets[index]
    if index == len(buckets) - 1:
        return buckets[-2][0]
    if index == 0 and upper <= 0:
        return upper
    lower, lower_count = (0.0, 0.0) if index == 0 else buckets[index - 1]
    in_bucket = upper_count - lower_count
    if in_bucket <= 0:
        return lower
    return lower + (upper - lower) * (rank - lower_count) / in_bucket


def mean(total_sum: float, total_count: float) -> float:
    """sum / count, NaN when there is nothing to average."""
    if math.isnan(total_sum) or math.isnan(total_count) or total_count <= 0:
        return math.nan
    return total_sum / total_count


def _aligned(stable: Histogram, candidate: Histogram) -> tuple[list[float], list[float], list[float]] | None:
    """Common bounds and both sides' cumulative counts at them (different layouts meet on shared bounds)."""
    left, right = _sorted(stable), _sorted(candidate)
    if left is None or right is None:
        return None
    left_map, right_map = dict(left), dict(right)
    bounds = sorted(set(left_map) & set(right_map))
    return bounds, [left_map[b] for b in bounds], [right_map[b] for b in bounds]


def _per_bucket(cumulative: list[float]) -> list[float]:
    return [cumulative[0]] + [b - a for a, b in itertools.pairwise(cumulative)]


def psi(stable: Histogram, candidate: Histogram, smoothing: float = DEFAULT_PSI_SMOOTHING) -> float:
    """Population stability index of the candidate's distribution against stable's, over shared buckets.

    PSI = sum_i (c_i - s_i) * ln(c_i / s_i), with s_i, c_i each side's share of bucket i after adding
    `smoothing` counts to every bucket. 0 means identical bucket shares; NaN when either side is empty.
    """
    aligned = _aligned(stable, candidate)
    if aligned is None:
        return math.nan
    _, left, right = aligned
    s_counts, c_counts = _per_bucket(left), _per_bucket(right)
    k = len(s_counts)
    s_total, c_total = left[-1], right[-1]
    if s_total <= 0 or c_total <= 0:
        return math.nan
    value = 0.0
    for s_count, c_count in zip(s_counts, c_counts, strict=True):
        s_share = (s_count + smoothing) / (s_total + k * smoothing)
        c_share = (c_count + smoothing) / (c_total + k * smoothing)
        value += (c_share - s_share) * math.log(c_share / s_share)
    return value


def psi_noise_floor(buckets: int, stable_count: float, candidate_count: float) -> float:
    """PSI expected from sampling alone when nothing changed: about (k - 1) * (1/N_stable + 1/N_candidate).

    PSI is close to a chi-square statistic for small shifts, whose mean is k - 1 degrees of freedom times
    the variance of each share; a `max` near this value will fail on noise, so reasons quote it.
    """
    if buckets < 2 or stable_count <= 0 or candidate_count <= 0:
        return math.nan
    return (buckets - 1) * (1.0 / stable_count + 1.0 / candidate_count)


def shared_buckets(stable: Histogram, candidate: Histogram) -> int:
    """Buckets PSI and KS compare (bounds both sides report, +Inf included), 0 when unusable."""
    aligned = _aligned(stable, candidate)
    return 0 if aligned is None else len(aligned[0])


def ks(stable: Histogram, candidate: Histogram) -> float:
    """Kolmogorov-Smirnov distance between the two empirical CDFs, read at the shared bucket bounds.

    It is the largest gap, over bucket bounds b, between the share of candidate and of stable observations
    that are <= b: 0 means the same shares at every bound, 1 means no overlap. Because CDFs are seen only
    at bucket bounds it is a lower bound on the KS statistic of the raw scores (shifts inside one bucket
    are invisible). NaN when either side is empty.
    """
    aligned = _aligned(stable, candidate)
    if aligned is None:
        return math.nan
    _, left, right = aligned
    s_total, c_total = left[-1], right[-1]
    if s_total <= 0 or c_total <= 0:
        return math.nan
    return max(abs(c / c_total - s / s_total) for s, c in zip(left, right, strict=True))
