"""The thin async edge of the analysis: issue one tick's queries concurrently, then judge them.

`analyze` never raises on Prometheus trouble: a failed query becomes Inconclusive verdicts for the guards
it served and a line in `errors`.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from modelrollout.analysis.batch import QueryBatcher
from modelrollout.analysis.experiment import Counts, decode_counts, experiment_queries
from modelrollout.analysis.prometheus import PrometheusClient
from modelrollout.analysis.queries import Query, active_guards, plan_queries, stable_keys
from modelrollout.analysis.results import AnalysisResult, PrometheusError, QueryOutcome, Unavailable
from modelrollout.analysis.verdicts import judge
from modelrollout.api.common import seconds
from modelrollout.api.guards import AnalysisPhase
from modelrollout.api.spec import ModelRolloutSpec


async def _outcome(
    client: PrometheusClient, query: Query, now: datetime, batcher: QueryBatcher | None, interval: float
) -> QueryOutcome:
    try:
        if batcher is not None and query.shape is not None:
            return await batcher.query(client, query, now, interval)
        return await client.query(query.promql, at=now)
    except PrometheusError as error:
        return error
    except Exception as error:  # a bug or an unexpected library error must not stop the tick either
        return Unavailable(f"unexpected {type(error).__name__}: {error}")


async def analyze(
    client: PrometheusClient,
    spec: ModelRolloutSpec,
    namespace: str,
    phase: AnalysisPhase,
    stable: str,
    candidate: str,
    since: datetime,
    now: datetime,
    batcher: QueryBatcher | None = None,
    *,
    baseline_at: datetime | None = None,
) -> AnalysisResult:
    """One analysis tick: every guard judged in `phase`, on every slice, evaluated at `now`.

    `since` is the start of the current step (or shadow, or bake): sequential guards accumulate evidence from
    it. Guards with identical PromQL share one query, so the count is at most one per guard (plus one request
    count query when custom guards need samples and no errorRate guard provides them). With a `batcher`,
    queries of a shape other rollouts share go into one batched query (custom queries stay this rollout's).
    With `baseline_at` (the blue-green bake, where stable serves nobody) the queries that give some guard
    stable's values are issued once more at that time, unbatched, and stable's side is read from them.
    """
    plan = plan_queries(spec, namespace, phase, stable, candidate, since, now)
    distinct = plan.distinct()
    interval = seconds(spec.analysis.interval)
    keys = stable_keys(plan, active_guards(spec, phase)) if baseline_at is not None else set()
    before = list(dict.fromkeys(plan.queries[key] for key in plan.queries if key in keys))
    results = await asyncio.gather(
        *(_outcome(client, query, now, batcher, interval) for query in distinct),
        *(
            _outcome(client, query, baseline_at, None, interval)
            for query in before
            if baseline_at is not None
        ),
    )
    by_query = dict(zip(distinct, results[: len(distinct)], strict=True))
    by_baseline = dict(zip(before, results[len(distinct) :], strict=True))
    outcomes = {key: by_query[query] for key, query in plan.queries.items()}
    baseline = {key: by_baseline[query] for key, query in plan.queries.items() if key in keys}
    return judge(
        spec,
        phase,
        stable,
        candidate,
        outcomes,
        now,
        queries=len(distinct) + len(before),
        since=since,
        baseline=baseline or None,
    )


async def experiment_counts(
    client: PrometheusClient,
    spec: ModelRolloutSpec,
    namespace: str,
    stable: str,
    candidate: str,
    since: datetime,
    now: datetime,
) -> Counts | str:
    """The experiment's counters per slice and arm since `since`, or why they could not be read."""
    queries = experiment_queries(spec, namespace, stable, candidate, since, now)
    outcomes = await asyncio.gather(
        *(_outcome(client, Query("counts", promql), now, None, 0.0) for promql in queries.values())
    )
    samples = []
    for key, outcome in zip(queries, outcomes, strict=True):
        if isinstance(outcome, PrometheusError):
            return f"{key} query failed: {outcome}"
        samples.append(outcome)
    return decode_counts(samples[0], samples[1], stable, candidate)
