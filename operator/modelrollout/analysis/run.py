"""The thin async edge of the analysis: issue one tick's queries concurrently, then judge them.

`analyze` never raises on Prometheus trouble: a failed query becomes Inconclusive verdicts for the guards
it served and a line in `errors`.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from modelrollout.analysis.batch import QueryBatcher
from modelrollout.analysis.prometheus import PrometheusClient
from modelrollout.analysis.queries import Query, plan_queries
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
) -> AnalysisResult:
    """One analysis tick: every guard judged in `phase`, on every slice, evaluated at `now`.

    `since` is the start of the current step (or shadow): sequential guards accumulate evidence from it.
    Guards with identical PromQL share one query, so the count is at most one per guard (plus one request
    count query when custom guards need samples and no errorRate guard provides them). With a `batcher`,
    queries of a shape other rollouts share go into one batched query (custom queries stay this rollout's).
    """
    plan = plan_queries(spec, namespace, phase, stable, candidate, since, now)
    distinct = plan.distinct()
    interval = seconds(spec.analysis.interval)
    results = await asyncio.gather(*(_outcome(client, query, now, batcher, interval) for query in distinct))
    by_query = dict(zip(distinct, results, strict=True))
    outcomes = {key: by_query[query] for key, query in plan.queries.items()}
    return judge(spec, phase, stable, candidate, outcomes, now, queries=len(distinct), since=since)
