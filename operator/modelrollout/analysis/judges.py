"""Pure threshold judges: absolute bounds, ratio and delta to stable, each with its evidence.

A judge never passes without data: too few samples, NaN or infinite values and missing series are
Inconclusive, with the reason. Ties pass (a value equal to its bound is within it).
"""

from __future__ import annotations

import math

from modelrollout.api.guards import Analysis, Guard, Thresholds
from modelrollout.api.status import GuardVerdict, Samples

DEFAULT_RATIO_FLOOR = 1e-6
"""Smallest stable value a ratio bound scales (e.g. 1 microsecond of latency), so stable = 0 still bounds.

For error rates the floor is one error's worth of stable traffic, 1 / stable requests (see `ratio_floor`):
stable 0 errors in 2,000 requests reads as "below 1 in 2,000", not as "exactly zero", which would fail the
candidate on its first error.
"""


def fmt(value: float | None) -> str:
    """A number for a reason sentence: 3 significant digits, NaN and missing spelled out."""
    if value is None:
        return "missing"
    if math.isnan(value):
        return "NaN"
    return f"{value:.3g}"


def required_samples(analysis: Analysis, guard: Guard, slice_name: str) -> int:
    """minSamples of the slice's override, else the guard's, else analysis.minSamples."""
    override = guard.slices.get(slice_name)
    if override is not None and override.min_samples is not None:
        return override.min_samples
    return guard.min_samples if guard.min_samples is not None else analysis.min_samples


def ratio_floor(metric: str, stable_requests: int) -> float:
    """The floor `ratio_to_stable` applies to stable's value for this metric (see DEFAULT_RATIO_FLOOR)."""
    if metric in ("errorRate", "nullPredictionRate") and stable_requests > 0:
        return 1.0 / stable_requests
    return DEFAULT_RATIO_FLOOR


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def inconclusive(
    guard: Guard,
    reason: str,
    *,
    stable: float | None = None,
    canary: float | None = None,
    samples: Samples | None = None,
) -> GuardVerdict:
    """An Inconclusive verdict; values are kept only when finite (status JSON has no NaN)."""
    return GuardVerdict(
        name=guard.name,
        metric=guard.metric,
        verdict="Inconclusive",
        stable=stable if _finite(stable) else None,
        canary=canary if _finite(canary) else None,
        samples=samples or Samples(),
        reason=f"{guard.name}: {reason}",
    )


def _verdict(
    guard: Guard,
    failed: bool,
    *,
    bound: str,
    threshold: float,
    canary: float,
    stable: float | None,
    samples: Samples,
    reason: str,
) -> GuardVerdict:
    return GuardVerdict(
        name=guard.name,
        metric=guard.metric,
        verdict="Fail" if failed else "Pass",
        stable=stable if _finite(stable) else None,
        canary=canary,
        threshold=threshold,
        bound=bound,
        samples=samples,
        reason=reason,
    )


def absolute_max(
    guard: Guard, bound: float, canary: float, *, stable: float | None = None, samples: Samples | None = None
) -> GuardVerdict:
    """Fail when the candidate's value exceeds `max`."""
    failed = canary > bound
    op = ">" if failed else "<="
    return _verdict(
        guard,
        failed,
        bound="max",
        threshold=bound,
        canary=canary,
        stable=stable,
        samples=samples or Samples(),
        reason=f"{guard.name} {fmt(canary)} {op} max {fmt(bound)}",
    )


def absolute_min(
    guard: Guard, bound: float, canary: float, *, stable: float | None = None, samples: Samples | None = None
) -> GuardVerdict:
    """Fail when the candidate's value is below `min`."""
    failed = canary < bound
    op = "<" if failed else ">="
    return _verdict(
        guard,
        failed,
        bound="min",
        threshold=bound,
        canary=canary,
        stable=stable,
        samples=samples or Samples(),
        reason=f"{guard.name} {fmt(canary)} {op} min {fmt(bound)}",
    )


def ratio_to_stable(
    guard: Guard,
    ratio: float,
    canary: float,
    stable: float,
    *,
    floor: float = DEFAULT_RATIO_FLOOR,
    samples: Samples | None = None,
) -> GuardVerdict:
    """Fail when canary > ratio x max(stable, floor); the floor keeps a stable value of 0 meaningful."""
    base = max(stable, floor)
    threshold = ratio * base
    failed = canary > threshold
    op = ">" if failed else "<="
    scaled = f"stable {fmt(stable)}" if stable >= floor else f"floor {fmt(floor)}, stable {fmt(stable)}"
    return _verdict(
        guard,
        failed,
        bound="maxRatioToStable",
        threshold=threshold,
        canary=canary,
        stable=stable,
        samples=samples or Samples(),
        reason=f"{guard.name} {fmt(canary)} {op} {fmt(threshold)} ({fmt(ratio)} x {scaled})",
    )


def delta_to_stable(
    guard: Guard, delta: float, canary: float, stable: float, *, samples: Samples | None = None
) -> GuardVerdict:
    """Fail when canary > stable + delta."""
    threshold = stable + delta
    failed = canary > threshold
    op = ">" if failed else "<="
    return _verdict(
        guard,
        failed,
        bound="maxDeltaToStable",
        threshold=threshold,
        canary=canary,
        stable=stable,
        samples=samples or Samples(),
        reason=f"{guard.name} {fmt(canary)} {op} {fmt(threshold)} (stable {fmt(stable)} + {fmt(delta)})",
    )


def min_ratio_to_stable(
    guard: Guard, ratio: float, canary: float, stable: float, *, samples: Samples | None = None
) -> GuardVerdict:
    """Fail when canary < ratio x stable (higher is better: accuracy, say)."""
    threshold = ratio * stable
    failed = canary < threshold
    op = "<" if failed else ">="
    return _verdict(
        guard,
        failed,
        bound="minRatioToStable",
        threshold=threshold,
        canary=canary,
        stable=stable,
        samples=samples or Samples(),
        reason=f"{guard.name} {fmt(canary)} {op} {fmt(threshold)} ({fmt(ratio)} x stable {fmt(stable)})",
    )


def min_delta_to_stable(
    guard: Guard, delta: float, canary: float, stable: float, *, samples: Samples | None = None
) -> GuardVerdict:
    """Fail when canary < stable - delta: the candidate dropped more than `delta` below stable."""
    threshold = stable - delta
    failed = canary < threshold
    op = "<" if failed else ">="
    return _verdict(
        guard,
        failed,
        bound="minDeltaToStable",
        threshold=threshold,
        canary=canary,
        stable=stable,
        samples=samples or Samples(),
        reason=f"{guard.name} {fmt(canary)} {op} {fmt(threshold)} (stable {fmt(stable)} - {fmt(delta)})",
    )


LOWER_BOUNDS = frozenset({"min", "minRatioToStable", "minDeltaToStable"})
"""Bounds a value must stay at or above (the others it must stay at or below)."""


def _margin(verdict: GuardVerdict) -> float:
    """How far inside its bound a passing value is, relative to the bound (smaller is closer to failing)."""
    threshold, canary = verdict.threshold, verdict.canary
    assert threshold is not None
    assert canary is not None
    room = canary - threshold if verdict.bound in LOWER_BOUNDS else threshold - canary
    return room / max(abs(threshold), 1e-12)


def judge_thresholds(
    guard: Guard,
    thresholds: Thresholds,
    *,
    canary: float | None,
    stable: float | None,
    samples: Samples,
    min_samples: int,
    comparative: bool = False,
    floor: float = DEFAULT_RATIO_FLOOR,
) -> GuardVerdict:
    """Every bound set in `thresholds` against the candidate's value in one slice.

    Relative bounds (ratio, delta, upper or lower) and comparative metrics (PSI, KS: the value itself
    compares the two) need `min_samples` on both versions; absolute bounds on a plain metric only on the
    candidate, so a 100% step, where stable serves nothing, can still pass. Fail names the first failing
    bound (max, min, the upper ratio and delta, then the lower ones); Pass names the bound with the least
    room left.
    """
    relative = thresholds.relative()
    if comparative and relative:
        return inconclusive(
            guard,
            f"{guard.metric} already compares candidate with stable; use max or min, not a bound to stable",
            canary=canary,
            samples=samples,
        )
    needs_stable = relative or comparative
    if samples.canary < min_samples or (needs_stable and samples.stable < min_samples):
        wanted = "each" if needs_stable else "on the candidate"
        return inconclusive(
            guard,
            f"too few samples (canary {samples.canary}, stable {samples.stable}; "
            f"need {min_samples} {wanted})",
            stable=stable,
            canary=canary,
            samples=samples,
        )
    if canary is None or not math.isfinite(canary):
        return inconclusive(
            guard, f"no usable candidate value ({fmt(canary)})", stable=stable, canary=canary, samples=samples
        )
    if relative and (stable is None or not math.isfinite(stable)):
        return inconclusive(
            guard, f"no usable stable value ({fmt(stable)})", stable=stable, canary=canary, samples=samples
        )
    verdicts: list[GuardVerdict] = []
    if thresholds.max is not None:
        verdicts.append(absolute_max(guard, thresholds.max, canary, stable=stable, samples=samples))
    if thresholds.min is not None:
        verdicts.append(absolute_min(guard, thresholds.min, canary, stable=stable, samples=samples))
    if thresholds.max_ratio_to_stable is not None and stable is not None:
        verdicts.append(
            ratio_to_stable(
                guard, thresholds.max_ratio_to_stable, canary, stable, floor=floor, samples=samples
            )
        )
    if thresholds.max_delta_to_stable is not None and stable is not None:
        verdicts.append(
            delta_to_stable(guard, thresholds.max_delta_to_stable, canary, stable, samples=samples)
        )
    if thresholds.min_ratio_to_stable is not None and stable is not None:
        verdicts.append(
            min_ratio_to_stable(guard, thresholds.min_ratio_to_stable, canary, stable, samples=samples)
        )
    if thresholds.min_delta_to_stable is not None and stable is not None:
        verdicts.append(
            min_delta_to_stable(guard, thresholds.min_delta_to_stable, canary, stable, samples=samples)
        )
    if not verdicts:
        return inconclusive(guard, "no threshold applies to this slice", canary=canary, samples=samples)
    failed = [v for v in verdicts if v.verdict == "Fail"]
    if failed:
        return failed[0]
    return min(verdicts, key=_margin)
