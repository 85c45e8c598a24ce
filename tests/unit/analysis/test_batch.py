"""Batched analysis: many rollouts, one query per shape; a failed batch is every member's failed query."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

import httpx

from modelrollout.analysis.batch import QueryBatcher
from modelrollout.analysis.prometheus import PrometheusClient
from modelrollout.analysis.run import analyze
from modelrollout.api.spec import ModelRolloutSpec
from tests.support.samples import CANDIDATE, STABLE, make_spec

NOW = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
SINCE = NOW - timedelta(minutes=2)
GUARDS = [
    {"name": "error-rate", "metric": "errorRate", "max": 0.05},
    {"name": "p99", "metric": "latencyP99", "maxRatioToStable": 1.2},
]
FAILING_MODEL = "model-3"


def _counts(model: str, namespace: str) -> list[dict[str, Any]]:
    """Per (slice, version): 1000 requests, 1% errors, 40% for FAILING_MODEL's candidate."""
    out = []
    for slice_name in ("ios", "android"):
        for version in (STABLE, CANDIDATE):
            share = 0.4 if (model, version) == (FAILING_MODEL, CANDIDATE) else 0.01
            labels = {"namespace": namespace, "model": model, "slice": slice_name, "version": version}
            out.append({"metric": {**labels, "code": "200"}, "value": [0, str(1000 * (1 - share))]})
            out.append({"metric": {**labels, "code": "500"}, "value": [0, str(1000 * share)]})
    return out


class FakePrometheus:
    """Answers the counts queries of models model-0..model-9 in namespaces a and b; latency with no data."""

    def __init__(self, fail: bool = False) -> None:
        self.queries: list[str] = []
        self.fail = fail

    def __call__(self, request: httpx.Request) -> httpx.Response:
        query = parse_qs(request.content.decode())["query"][0]
        self.queries.append(query)
        if self.fail:
            return httpx.Response(503, content=b'{"status":"error","errorType":"unavailable","error":"down"}')
        result = []
        if "model_requests_total" in query:
            result = [s for ns in "ab" for i in range(10) for s in _counts(f"model-{i}", ns)]
            exact = re.search(r'namespace="([^"]+)",model="([^"]+)"', query)
            if exact:  # a rollout's own query selects its own series
                result = [
                    s for s in result if (s["metric"]["namespace"], s["metric"]["model"]) == exact.groups()
                ]
        body = {"status": "success", "data": {"resultType": "vector", "result": result}}
        return httpx.Response(200, content=json.dumps(body).encode())


def _spec(model: str) -> ModelRolloutSpec:
    spec = make_spec(GUARDS)
    return spec.model_copy(update={"model": spec.model.model_copy(update={"name": model})})


async def _analyse_all(prometheus: FakePrometheus, batcher: QueryBatcher | None, rollouts: int) -> list[Any]:
    async with PrometheusClient("http://p:9090", transport=httpx.MockTransport(prometheus)) as client:
        return list(
            await asyncio.gather(
                *(
                    analyze(
                        client, _spec(f"model-{i}"), "a", "canary", STABLE, CANDIDATE, SINCE, NOW, batcher
                    )
                    for i in range(rollouts)
                )
            )
        )


async def test_ten_rollouts_send_one_query_per_shape_and_each_gets_its_own_verdict() -> None:
    own, shared = FakePrometheus(), FakePrometheus()
    unbatched = await _analyse_all(own, None, 10)
    batched = await _analyse_all(shared, QueryBatcher(window=0.05), 10)
    assert len(own.queries) == 20  # counts and buckets, per rollout
    assert len(shared.queries) == 2  # counts and buckets, once
    assert 'model=~"model-0|model-1|' in shared.queries[0]
    assert "sum by (namespace, model, " in shared.queries[0]
    for alone, together in zip(unbatched, batched, strict=True):
        assert together.failing() == alone.failing()
        assert together.slices == alone.slices
    assert [r.failing() for r in batched].count(["ios", "android"]) == 1
    assert batched[3].failing() == ["ios", "android"]  # namespace b's model-3 (also failing) is not mixed in
    failing = {g.name: g for g in batched[3].slices["ios"].guards}
    assert failing["error-rate"].canary == 0.4
    assert failing["error-rate"].samples.canary == 1000  # its own series only, not namespace b's model-3


async def test_a_failed_batch_makes_every_member_inconclusive_as_its_own_query_would() -> None:
    down = FakePrometheus(fail=True)
    results = await _analyse_all(down, QueryBatcher(window=0.05), 5)
    assert len(down.queries) == 2
    for result in results:
        assert {v.verdict for v in result.slices.values()} == {"Inconclusive"}
        assert all("Unavailable" in error for error in result.errors)


async def test_custom_queries_stay_each_rollouts_own() -> None:
    custom = {
        "name": "hits",
        "metric": "hits",
        "query": 'sum by (slice, version) (rate(hits{model="{model}"}[{window}]))',
        "max": 1,
    }
    prometheus = FakePrometheus()
    batcher = QueryBatcher(window=0.05)
    spec = make_spec([*GUARDS, custom])
    async with PrometheusClient("http://p:9090", transport=httpx.MockTransport(prometheus)) as client:
        await asyncio.gather(
            *(
                analyze(client, spec.model_copy(update={"model": spec.model.model_copy(update={"name": m})}),
                        "a", "canary", STABLE, CANDIDATE, SINCE, NOW, batcher)
                for m in ("m1", "m2")
            )
        )  # fmt: skip
    assert sum("hits{" in q for q in prometheus.queries) == 2
    assert batcher.batches == 2  # counts (also the custom guard's samples) and buckets
