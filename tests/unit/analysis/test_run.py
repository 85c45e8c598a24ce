"""The async edge, faults injected with httpx.MockTransport (real answers: tests/integration/analysis)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs

import httpx

from modelrollout.analysis.prometheus import PrometheusClient
from modelrollout.analysis.run import analyze
from tests.support.samples import CANDIDATE, STABLE, make_spec

NOW = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
SINCE = NOW - timedelta(minutes=2)
GUARDS = [
    {"name": "error-rate", "metric": "errorRate", "max": 0.05},
    {"name": "error-ratio", "metric": "errorRate", "maxRatioToStable": 1.1},
    {"name": "p99", "metric": "latencyP99", "maxRatioToStable": 1.2},
    {"name": "psi", "metric": "predictionPSI", "max": 0.2},
    {"name": "seq", "metric": "errorRate", "test": "sequential", "maxRatioToStable": 1.0},
]


async def test_unreachable_prometheus_gives_inconclusive_verdicts_not_exceptions() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused")

    spec = make_spec(GUARDS)
    async with PrometheusClient("http://p:9090", transport=httpx.MockTransport(refuse)) as client:
        result = await analyze(client, spec, "ml", "canary", STABLE, CANDIDATE, SINCE, NOW)
        assert client.queries_issued == 4  # error-rate and error-ratio share one query
    assert result.queries == 4
    assert {v.verdict for v in result.slices.values()} == {"Inconclusive"}
    assert len(result.errors) == 4
    assert result.errors[0].startswith("error-rate, error-ratio: Unavailable: cannot reach http://p:9090")


async def test_one_bad_query_only_touches_its_guard_and_a_bug_never_escapes() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        query = parse_qs(request.content.decode())["query"][0]
        if "duration" in query:
            body = {"status": "error", "errorType": "bad_data", "error": "parse error"}
            return httpx.Response(400, content=json.dumps(body).encode())
        if "score" in query:
            raise ValueError("a bug in a transport must not stop the tick")
        return httpx.Response(200, content=b'{"status":"success","data":{"resultType":"vector","result":[]}}')

    spec = make_spec(GUARDS)
    async with PrometheusClient("http://p:9090", transport=httpx.MockTransport(handler)) as client:
        result = await analyze(client, spec, "ml", "canary", STABLE, CANDIDATE, SINCE, NOW)
    ios = {g.name: g for g in result.slices["ios"].guards}
    assert "BadData" in ios["p99"].reason
    assert "unexpected ValueError" in ios["psi"].reason
    assert ios["error-rate"].reason == f"error-rate: no series for slice ios, canary {CANDIDATE}"
    assert [e.split(":")[0] for e in result.errors] == ["p99", "psi"]


async def test_queries_run_concurrently_at_the_evaluation_time() -> None:
    times: set[str] = set()
    in_flight, most = 0, 0
    all_sent = asyncio.Event()

    async def held(request: httpx.Request) -> httpx.Response:
        # Each answer waits until all four queries are in flight: one at a time would never get there.
        nonlocal in_flight, most
        times.add(parse_qs(request.content.decode())["time"][0])
        in_flight += 1
        most = max(most, in_flight)
        if most == 4:
            all_sent.set()
        await asyncio.wait_for(all_sent.wait(), timeout=10)
        in_flight -= 1
        return httpx.Response(200, content=b'{"status":"success","data":{"resultType":"vector","result":[]}}')

    spec = make_spec(GUARDS)
    async with PrometheusClient("http://p:9090", transport=httpx.MockTransport(held)) as client:
        result = await analyze(client, spec, "ml", "canary", STABLE, CANDIDATE, SINCE, NOW)
    assert most == 4, "the four queries were in flight together"
    assert result.errors == []
    assert times == {f"{NOW.timestamp():.3f}"}


async def test_client_timeout_becomes_query_timeout() -> None:
    async def hang(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    spec = make_spec(GUARDS[:1])
    async with PrometheusClient("http://p:9090", timeout=0.2, transport=httpx.MockTransport(hang)) as client:
        result = await analyze(client, spec, "ml", "canary", STABLE, CANDIDATE, SINCE, NOW)
    assert result.errors == ["error-rate: QueryTimeout: no answer from http://p:9090 within 0.2s"]
