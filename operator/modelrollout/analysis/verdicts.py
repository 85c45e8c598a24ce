"""Pure: per-guard query outcomes -> a verdict for every slice, each guard's with its evidence.

A slice is Fail if any guard fails, else Inconclusive if any guard is, else Pass. A query error, a missing
series, NaN or too few samples makes that guard Inconclusive for the slices it touches, never Pass.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime

from modelrollout.analysis import distributions
from modelrollout.analysis.judges import fmt, inconclusive, judge_thresholds, ratio_floor, required_samples
from modelrollout.analysis.queries import (
    LATENCY_QUANTILES,
    REQUESTS_KEY,
    TALLIES,
    Counts,
    Query,
    Role,
    Tally,
    active_guards,
    decode_buckets,
    decode_counts,
    decode_mean,
    decode_tally,
    decode_values,
    plan_queries,
    role_of,
    window_seconds,
)
from modelrollout.analysis.results import (
    AnalysisResult,
    PartialData,
    PrometheusError,
    QueryOutcome,
    Sample,
    SliceVerdict,
)
from modelrollout.analysis.sequential import ErrorCounts, alpha_per_slice, sequential_errors
from modelrollout.api.guards import AnalysisPhase, Guard
from modelrollout.api.spec import ModelRolloutSpec
from modelrollout.api.status import GuardVerdict, Samples, Verdict


def _count(value: float | None) -> int:
    return round(value) if value is not None and math.isfinite(value) and value > 0 else 0


class _Context:
    """What every guard of one tick shares: spec, versions, slices, the decoding shape of each query."""

    def __init__(
        self,
        spec: ModelRolloutSpec,
        phase: AnalysisPhase,
        stable: str,
        candidate: str,
        outcomes: Mapping[str, QueryOutcome],
        now: datetime,
        since: datetime | None = None,
        baseline: Mapping[str, QueryOutcome] | None = None,
    ) -> None:
        self.spec = spec
        # How long the current stage has run: a window reaching back before it covers young series.
        self.stage_age = (now - since).total_seconds() if since is not None else None
        self.stable = stable
        self.candidate = candidate
        self.outcomes = outcomes
        self.slices = set(spec.slice_names())
        # Decoding needs each query's kind, labels and units, not its text: plan with placeholder values.
        self.shapes = plan_queries(spec, "", phase, stable, candidate, now, now).queries
        self.alpha = alpha_per_slice(spec)
        self.baseline = set(baseline or {})
        if baseline:
            merged = dict(outcomes)
            for key, before in baseline.items():
                if key in self.shapes:
                    merged[key] = _with_stable_from(
                        self.shapes[key], outcomes.get(key), before, stable, candidate
                    )
            self.outcomes = merged

    def samples_of(self, key: str) -> list[Sample] | str:
        """The samples of a plan key, or why there are none."""
        outcome = self.outcomes.get(key)
        if outcome is None:
            return "no query result"
        if isinstance(outcome, PrometheusError):
            return f"query failed: {outcome}"
        return outcome

    def decode(self, key: str) -> tuple[Query, list[Sample]] | str:
        samples = self.samples_of(key)
        if isinstance(samples, str):
            return samples
        return self.shapes[key], samples

    def version(self, role: Role) -> str:
        return self.candidate if role == "canary" else self.stable


def _with_stable_from(
    query: Query, now: QueryOutcome | None, before: QueryOutcome, stable: str, candidate: str
) -> QueryOutcome:
    """The candidate's samples from `now` and stable's from `before` (the window before a blue-green switch)."""
    if isinstance(before, PrometheusError):
        return before
    if now is None or isinstance(now, PrometheusError):
        return now if now is not None else []
    ours = [s for s in now if role_of(s, query, stable, candidate) == "canary"]
    return ours + [s for s in before if role_of(s, query, stable, candidate) == "stable"]


def _missing(ctx: _Context, slice_name: str, roles: Sequence[Role]) -> str:
    versions = " and ".join(f"{role} {ctx.version(role)}" for role in roles)
    return f"no series for slice {slice_name}, {versions}"


def _error_rate(
    ctx: _Context, guard: Guard, slice_name: str, query: Query, samples: list[Sample]
) -> GuardVerdict:
    counts = decode_counts(samples, query, ctx.stable, ctx.candidate, ctx.slices)
    canary, stable = counts.get((slice_name, "canary")), counts.get((slice_name, "stable"))
    min_samples = required_samples(ctx.spec.analysis, guard, slice_name)
    thresholds = guard.thresholds_for(slice_name)
    if guard.test == "sequential":
        return sequential_errors(
            guard,
            thresholds,
            canary=None if canary is None else _error_counts(canary.requests, canary.errors),
            stable=None if stable is None else _error_counts(stable.requests, stable.errors),
            alpha=ctx.alpha,
            min_samples=min_samples,
        )
    found = Samples(
        stable=_count(stable.requests if stable else None), canary=_count(canary.requests if canary else None)
    )
    if canary is None:
        return inconclusive(guard, _missing(ctx, slice_name, ["canary"]), samples=found)

    return judge_thresholds(
        guard,
        thresholds,
        canary=_rate(canary),
        stable=_rate(stable),
        samples=found,
        min_samples=min_samples,
        floor=ratio_floor(guard.metric, found.stable),
    )


def _rate(counts: Counts | None) -> float | None:
    if counts is None:
        return None
    return counts.errors / counts.requests if counts.requests > 0 else math.nan


def _error_counts(requests: float, errors: float) -> ErrorCounts | None:
    if not (math.isfinite(requests) and math.isfinite(errors)):
        return None  # NaN counts are missing data, judged Inconclusive
    return ErrorCounts.from_floats(requests, errors)


def _share(tally: Tally | None) -> float | None:
    if tally is None:
        return None
    return tally.hits / tally.total if tally.total > 0 else math.nan


def _tally(ctx: _Context, guard: Guard, slice_name: str, query: Query, samples: list[Sample]) -> GuardVerdict:
    """A share of one counter: null answers among answers, correct labels among labels received."""
    tallies = decode_tally(samples, query, ctx.stable, ctx.candidate, ctx.slices)
    canary, stable = tallies.get((slice_name, "canary")), tallies.get((slice_name, "stable"))
    found = Samples(
        stable=_count(stable.total if stable else None), canary=_count(canary.total if canary else None)
    )
    if canary is None:
        return inconclusive(guard, _missing(ctx, slice_name, ["canary"]), samples=found)
    return judge_thresholds(
        guard,
        guard.thresholds_for(slice_name),
        canary=_share(canary),
        stable=_share(stable),
        samples=found,
        min_samples=required_samples(ctx.spec.analysis, guard, slice_name),
        floor=ratio_floor(guard.metric, found.stable),
    )


def _window_not_full(ctx: _Context, guard: Guard) -> GuardVerdict | None:
    """Inconclusive while the window still reaches back before the current stage began.

    Prometheus extrapolates each young bucket series of a partial window on its own, which bends the
    candidate's histogram: a same-distribution shadow once read as PSI 0.74. Histogram shapes (quantiles,
    PSI, KS) are therefore compared over full windows only.
    """
    window = window_seconds(ctx.spec)
    if ctx.stage_age is None or ctx.stage_age >= window:
        return None
    return inconclusive(
        guard,
        f"this stage began {ctx.stage_age:.0f}s ago: distributions are compared over a full "
        f"{window:.0f}s window only",
    )


def _latency_quantile(
    ctx: _Context, guard: Guard, slice_name: str, query: Query, samples: list[Sample]
) -> GuardVerdict:
    early = _window_not_full(ctx, guard)
    if early is not None:
        return early
    histograms = decode_buckets(samples, query, ctx.stable, ctx.candidate, ctx.slices)
    canary_h, stable_h = histograms.get((slice_name, "canary")), histograms.get((slice_name, "stable"))
    found = Samples(
        stable=_count(distributions.total(stable_h) if stable_h else None),
        canary=_count(distributions.total(canary_h) if canary_h else None),
    )
    if canary_h is None:
        return inconclusive(guard, _missing(ctx, slice_name, ["canary"]), samples=found)
    q = LATENCY_QUANTILES[guard.metric]
    return judge_thresholds(
        guard,
        guard.thresholds_for(slice_name),
        canary=distributions.quantile(q, canary_h),
        stable=distributions.quantile(q, stable_h) if stable_h else None,
        samples=found,
        min_samples=required_samples(ctx.spec.analysis, guard, slice_name),
    )


def _latency_mean(
    ctx: _Context, guard: Guard, slice_name: str, query: Query, samples: list[Sample]
) -> GuardVerdict:
    means = decode_mean(samples, query, ctx.stable, ctx.candidate, ctx.slices)
    canary, stable = means.get((slice_name, "canary")), means.get((slice_name, "stable"))
    found = Samples(
        stable=_count(stable[1] if stable else None), canary=_count(canary[1] if canary else None)
    )
    if canary is None:
        return inconclusive(guard, _missing(ctx, slice_name, ["canary"]), samples=found)
    return judge_thresholds(
        guard,
        guard.thresholds_for(slice_name),
        canary=distributions.mean(*canary),
        stable=distributions.mean(*stable) if stable else None,
        samples=found,
        min_samples=required_samples(ctx.spec.analysis, guard, slice_name),
    )


def _prediction(
    ctx: _Context, guard: Guard, slice_name: str, query: Query, samples: list[Sample]
) -> GuardVerdict:
    early = _window_not_full(ctx, guard)
    if early is not None:
        return early
    histograms = decode_buckets(samples, query, ctx.stable, ctx.candidate, ctx.slices)
    canary_h, stable_h = histograms.get((slice_name, "canary")), histograms.get((slice_name, "stable"))
    found = Samples(
        stable=_count(distributions.total(stable_h) if stable_h else None),
        canary=_count(distributions.total(canary_h) if canary_h else None),
    )
    if canary_h is None or stable_h is None:
        absent: list[Role] = []
        if canary_h is None:
            absent.append("canary")
        if stable_h is None:
            absent.append("stable")
        return inconclusive(guard, _missing(ctx, slice_name, absent), samples=found)
    if guard.metric == "predictionPSI":
        # Sample-size-aware PSI: two samples of one distribution still differ by about the noise floor,
        # (k - 1)(1/Ns + 1/Nc); judging the excess over it makes `max` mean "a shift beyond sampling noise"
        # at any traffic level, instead of failing small canaries on noise alone.
        raw = distributions.psi(stable_h, canary_h)
        floor = distributions.psi_noise_floor(
            distributions.shared_buckets(stable_h, canary_h), found.stable, found.canary
        )
        value = max(0.0, raw - floor) if math.isfinite(raw) and math.isfinite(floor) else math.nan
    else:
        value = distributions.ks(stable_h, canary_h)
    verdict = judge_thresholds(
        guard,
        guard.thresholds_for(slice_name),
        canary=value,
        stable=None,
        samples=found,
        min_samples=required_samples(ctx.spec.analysis, guard, slice_name),
        comparative=True,
    )
    if guard.metric == "predictionPSI" and math.isfinite(value):
        verdict.reason += f" (PSI {fmt(raw)} minus sampling noise {fmt(floor)} at these counts)"
    return verdict


def _custom(
    ctx: _Context, guard: Guard, slice_name: str, query: Query, samples: list[Sample]
) -> GuardVerdict:
    values = decode_values(samples, query, ctx.stable, ctx.candidate, ctx.slices)
    requests = ctx.decode(REQUESTS_KEY)
    if isinstance(requests, str):
        return inconclusive(guard, f"request counts unavailable ({requests})")
    counts = decode_counts(requests[1], requests[0], ctx.stable, ctx.candidate, ctx.slices)
    canary_c, stable_c = counts.get((slice_name, "canary")), counts.get((slice_name, "stable"))
    found = Samples(
        stable=_count(stable_c.requests if stable_c else None),
        canary=_count(canary_c.requests if canary_c else None),
    )
    picked: dict[Role, float | None] = {}
    for role in ("canary", "stable"):
        series = values.get((slice_name, role), [])
        if len(series) > 1:
            return inconclusive(
                guard,
                f"query returned {len(series)} series for slice {slice_name}, {role} {ctx.version(role)}; "
                "aggregate it by (slice, version)",
                samples=found,
            )
        picked[role] = series[0] if series else None
    if picked["canary"] is None:
        return inconclusive(guard, _missing(ctx, slice_name, ["canary"]), samples=found)
    return judge_thresholds(
        guard,
        guard.thresholds_for(slice_name),
        canary=picked["canary"],
        stable=picked["stable"],
        samples=found,
        min_samples=required_samples(ctx.spec.analysis, guard, slice_name),
    )


def _guard_verdict(ctx: _Context, guard: Guard, slice_name: str) -> GuardVerdict:
    verdict = _judged(ctx, guard, slice_name)
    if guard.name in ctx.baseline and verdict.stable is not None:
        verdict.reason += " (stable: its window before the switch)"
    return verdict


def _judged(ctx: _Context, guard: Guard, slice_name: str) -> GuardVerdict:
    decoded = ctx.decode(guard.name)
    if isinstance(decoded, str):
        return inconclusive(guard, decoded)
    query, samples = decoded
    if query.kind == "custom":
        return _custom(ctx, guard, slice_name, query, samples)
    if guard.metric == "errorRate":
        return _error_rate(ctx, guard, slice_name, query, samples)
    if guard.metric in LATENCY_QUANTILES:
        return _latency_quantile(ctx, guard, slice_name, query, samples)
    if guard.metric == "latencyMean":
        return _latency_mean(ctx, guard, slice_name, query, samples)
    if guard.metric in TALLIES:
        return _tally(ctx, guard, slice_name, query, samples)
    return _prediction(ctx, guard, slice_name, query, samples)


def slice_verdict(guards: Sequence[GuardVerdict]) -> Verdict:
    """Fail if any guard fails, else Inconclusive if any is (or there is none), else Pass."""
    verdicts = {g.verdict for g in guards}
    if "Fail" in verdicts:
        return "Fail"
    if "Inconclusive" in verdicts or not guards:
        return "Inconclusive"
    return "Pass"


def _errors(outcomes: Mapping[str, QueryOutcome]) -> list[str]:
    """One line per failed query, naming the guards it served."""
    by_error: dict[int, tuple[PrometheusError, list[str]]] = {}
    for key, outcome in outcomes.items():
        if isinstance(outcome, PrometheusError):
            by_error.setdefault(id(outcome), (outcome, []))[1].append(key)
    return [f"{', '.join(keys)}: {error}" for error, keys in by_error.values()]


def judge(
    spec: ModelRolloutSpec,
    phase: AnalysisPhase,
    stable: str,
    candidate: str,
    outcomes: Mapping[str, QueryOutcome],
    now: datetime,
    *,
    queries: int | None = None,
    since: datetime | None = None,
    baseline: Mapping[str, QueryOutcome] | None = None,
) -> AnalysisResult:
    """Verdicts for every slice of the spec (declared slices, then 'default') from one tick's outcomes.

    `outcomes` maps each guard name judged in `phase` (and REQUESTS_KEY when custom guards are judged) to
    its samples or its error. `queries` is the number of queries issued; by default the number of distinct
    outcome objects (guards sharing one query share one outcome object). `baseline` maps plan keys to their
    outcome at the blue-green switch: stable's samples are taken from there, the candidate's from `outcomes`.
    """
    ctx = _Context(spec, phase, stable, candidate, outcomes, now, since, baseline)
    guards = active_guards(spec, phase)
    errors = _errors(outcomes)
    if not guards:
        errors.append(f"no guard is judged in phase {phase}: add {phase!r} to a guard's phases")
    slices: dict[str, SliceVerdict] = {}
    for slice_name in spec.slice_names():
        verdicts = [_guard_verdict(ctx, guard, slice_name) for guard in guards]
        slices[slice_name] = SliceVerdict(
            name=slice_name,
            verdict=slice_verdict(verdicts),
            samples=Samples(
                stable=max((v.samples.stable for v in verdicts), default=0),
                canary=max((v.samples.canary for v in verdicts), default=0),
            ),
            guards=verdicts,
        )
    issued = queries if queries is not None else len({id(o) for o in outcomes.values()})
    return AnalysisResult(
        slices=slices,
        queries=issued,
        errors=errors,
        partial=any(isinstance(o, PartialData) for o in outcomes.values()),
        no_data=sorted(key for key, o in outcomes.items() if isinstance(o, list) and not o),
        evaluated_at=now,
    )
