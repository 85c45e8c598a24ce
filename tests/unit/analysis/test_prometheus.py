from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import UTC, datetime
from urllib.parse import parse_qs

import httpx
import pytest

from modelrollout.analysis.prometheus import (
    BadData,
    ExecutionError,
    PrometheusClient,
    PrometheusError,
    QueryTimeout,
    Sample,
    Unavailable,
    parse_response,
)
from modelrollout.api.guards import PrometheusSource

Handler = Callable[[httpx.Request], httpx.Response]


def vector(*items: tuple[dict[str, str], str]) -> bytes:
    result = [{"metric": labels, "value": [1700000000.0, value]} for labels, value in items]
    return json.dumps({"status": "success", "data": {"resultType": "vector", "result": result}}).encode()


def error_body(error_type: str, message: str = "boom") -> bytes:
    return json.dumps({"status": "error", "errorType": error_type, "error": message}).encode()


def test_parse_vector_keeps_nan_and_infinities() -> None:
    samples = parse_response(
        200,
        vector(
            ({"slice": "ios", "version": "v1"}, "12.5"), ({"le": "+Inf"}, "NaN"), ({}, "+Inf"), ({}, "-Inf")
        ),
    )
    assert samples[0] == Sample({"slice": "ios", "version": "v1"}, 12.5)
    assert math.isnan(samples[1].value)
    assert samples[2].value == math.inf
    assert samples[3].value == -math.inf


def test_parse_empty_vector_and_scalar() -> None:
    assert parse_response(200, vector()) == []
    scalar = json.dumps(
        {"status": "success", "data": {"resultType": "scalar", "result": [1.0, "3"]}}
    ).encode()
    assert parse_response(200, scalar) == [Sample({}, 3.0)]


@pytest.mark.parametrize(
    ("status", "body", "error", "needle"),
    [
        (400, error_body("bad_data", "parse error at char 5"), BadData, "parse error"),
        (422, error_body("execution", "many-to-many matching"), ExecutionError, "many-to-many"),
        (503, error_body("timeout", "query timed out in expression evaluation"), QueryTimeout, "timed out"),
        (503, error_body("canceled"), QueryTimeout, "canceled"),
        (503, error_body("unavailable"), Unavailable, "unavailable"),
        (500, error_body("internal"), Unavailable, "internal"),
        (200, error_body("weird"), ExecutionError, "weird"),
        (503, b"upstream request timeout", QueryTimeout, "timeout"),
        (504, b"gateway timeout", QueryTimeout, "gateway timeout"),
        (502, b"<html>bad gateway</html>", Unavailable, "non-JSON"),
        (200, b"<html>login</html>", Unavailable, "non-JSON"),
        (200, b"", Unavailable, "empty body"),
        (400, b"garbage", BadData, "garbage"),
        (
            200,
            json.dumps({"status": "success", "data": {"resultType": "matrix", "result": []}}).encode(),
            Unavailable,
            "matrix",
        ),
        (
            200,
            json.dumps(
                {"status": "success", "data": {"resultType": "vector", "result": [{"value": 1}]}}
            ).encode(),
            Unavailable,
            "malformed",
        ),
    ],
)
def test_error_mapping(status: int, body: bytes, error: type[PrometheusError], needle: str) -> None:
    with pytest.raises(error, match=needle) as caught:
        parse_response(status, body)
    assert type(caught.value) is error
    assert caught.value.status == status
    assert str(caught.value).startswith(error.kind)


def client_with(handler: Handler, timeout: float = 2.0) -> PrometheusClient:
    return PrometheusClient(
        "http://prometheus.test:9090/", timeout=timeout, transport=httpx.MockTransport(handler)
    )


async def test_query_sends_form_with_time_and_server_timeout_and_counts_queries() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, content=vector(({"slice": "ios"}, "1")))

    client = client_with(handler, timeout=2.5)
    at = datetime(2025, 1, 1, tzinfo=UTC)
    assert await client.query("up", at=at) == [Sample({"slice": "ios"}, 1.0)]
    assert await client.query("up") == [Sample({"slice": "ios"}, 1.0)]  # reusable across ticks
    await client.aclose()
    assert client.queries_issued == 2
    first = seen[0]
    assert (first.method, str(first.url)) == ("POST", "http://prometheus.test:9090/api/v1/query")
    form = parse_qs(first.content.decode())
    assert form == {"query": ["up"], "timeout": ["2.5"], "time": [f"{at.timestamp():.3f}"]}
    assert "time" not in parse_qs(seen[1].content.decode())


@pytest.mark.parametrize(
    ("raised", "error"),
    [
        (httpx.ConnectError("connection refused"), Unavailable),
        (httpx.ConnectTimeout("connect timed out"), Unavailable),
        (httpx.ReadTimeout("read timed out"), QueryTimeout),
        (httpx.PoolTimeout("pool"), QueryTimeout),
        (httpx.RemoteProtocolError("server hung up"), Unavailable),
        (httpx.ReadError("reset by peer"), Unavailable),
    ],
)
async def test_transport_faults_map_to_typed_errors_without_retries(
    raised: Exception, error: type[Exception]
) -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        raise raised

    async with client_with(handler) as client:
        with pytest.raises(error):
            await client.query("up")
        assert calls == 1  # no retry inside the tick: the next tick is the retry
        assert client.queries_issued == 1


async def test_http_error_statuses_are_typed() -> None:
    answers = iter(
        [
            httpx.Response(400, content=error_body("bad_data")),
            httpx.Response(422, content=error_body("execution")),
            httpx.Response(503, content=error_body("timeout")),
            httpx.Response(500, content=b"oops"),
        ]
    )
    async with client_with(lambda request: next(answers)) as client:
        for expected in (BadData, ExecutionError, QueryTimeout, Unavailable):
            with pytest.raises(expected):
                await client.query("up")


def test_from_source_parses_the_timeout() -> None:
    client = PrometheusClient.from_source(PrometheusSource(url="http://p:9090", timeout="1500ms"))
    assert client.timeout == 1.5
    assert client.url == "http://p:9090"
