"""The Prometheus edge: instant queries over one reusable httpx.AsyncClient, with typed errors.

Every failure is one of the PrometheusError subclasses (BadData, ExecutionError, QueryTimeout,
Unavailable); nothing is retried here, because the next analysis tick is the retry and a retry loop inside
a tick would pile load on a struggling Prometheus.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from types import TracebackType
from typing import Any

import httpx

from modelrollout.analysis.results import (
    BadData,
    ExecutionError,
    PartialData,
    PrometheusError,
    QueryTimeout,
    Sample,
    Unavailable,
)
from modelrollout.api.common import redact_url, seconds
from modelrollout.api.guards import PrometheusSource

__all__ = [
    "BadData",
    "ExecutionError",
    "PartialData",
    "PrometheusClient",
    "PrometheusError",
    "PrometheusPool",
    "QueryTimeout",
    "Sample",
    "Unavailable",
    "parse_response",
]

_ERROR_TYPES: dict[str, type[PrometheusError]] = {
    "bad_data": BadData,
    "execution": ExecutionError,
    "timeout": QueryTimeout,
    "canceled": QueryTimeout,
    "unavailable": Unavailable,
}
_BODY_EXCERPT = 200
MAX_RESPONSE_BYTES = 8 * 1024 * 1024
"""A larger answer is refused unread: one operator serves every rollout, and a huge or endless body from a
Prometheus a tenant names must not exhaust its memory. Ours are at most 33 slices x 2 versions x buckets."""


def _excerpt(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= _BODY_EXCERPT else flat[:_BODY_EXCERPT] + "..."


def _error_for_status(status: int, message: str) -> PrometheusError:
    if status == 400:
        return BadData(message, status=status)
    if status == 422:
        return ExecutionError(message, status=status)
    if status == 504 or (status == 503 and "timeout" in message.lower()):
        return QueryTimeout(message, status=status)
    if status >= 500:
        return Unavailable(message, status=status)
    return ExecutionError(message, status=status)


def _value(raw: Any) -> float:
    # Prometheus encodes values as strings, including "NaN", "+Inf" and "-Inf", which float() reads.
    if not isinstance(raw, list | tuple) or len(raw) != 2 or not isinstance(raw[1], str):
        raise ValueError(f"malformed sample value {raw!r}")
    return float(raw[1])


def _samples(data: Any) -> list[Sample]:
    if not isinstance(data, dict):
        raise ValueError("data is not an object")
    kind, result = data.get("resultType"), data.get("result")
    if kind == "vector":
        if not isinstance(result, list):
            raise ValueError("vector result is not a list")
        out = []
        for item in result:
            metric = item.get("metric") if isinstance(item, dict) else None
            if not isinstance(metric, dict):
                raise ValueError(f"malformed vector element {item!r}")
            out.append(
                Sample(labels={str(k): str(v) for k, v in metric.items()}, value=_value(item.get("value")))
            )
        return out
    if kind == "scalar":
        return [Sample(labels={}, value=_value(result))]
    raise ValueError(f"unexpected result type {kind!r} (an instant query should return a vector)")


def parse_response(status: int, body: bytes) -> list[Sample]:
    """Samples of a /api/v1/query answer, or the PrometheusError it amounts to."""
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        payload = None
    if not isinstance(payload, dict):
        text = _excerpt(body.decode("utf-8", "replace")) or "(empty body)"
        if status in (400, 422, 504) or (status == 503 and "timeout" in text.lower()):
            raise _error_for_status(status, f"HTTP {status}: {text}")
        raise Unavailable(f"HTTP {status} with a non-JSON body: {text}", status=status)
    if payload.get("status") == "success" and 200 <= status < 300:
        warnings = payload.get("warnings")
        if warnings:
            text = "; ".join(str(w) for w in warnings) if isinstance(warnings, list) else str(warnings)
            raise PartialData(f"partial data: {_excerpt(text)}", status=status)
        try:
            return _samples(payload.get("data"))
        except (ValueError, TypeError, AttributeError) as error:
            raise Unavailable(f"malformed response: {error}", status=status) from None
    error_type = str(payload.get("errorType", ""))
    message = f"HTTP {status}: {error_type or 'error'}: {payload.get('error', '(no message)')}"
    known = _ERROR_TYPES.get(error_type)
    raise known(message, status=status) if known is not None else _error_for_status(status, message)


class PrometheusClient:
    """Instant queries against one Prometheus; open once, query every tick, `aclose()` at shutdown."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 5.0,
        transport: httpx.AsyncBaseTransport | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.shown = redact_url(self.url)
        """The URL as errors (and so status, Events and logs) show it: no credentials, no query values."""
        self.timeout = timeout
        self.queries_issued = 0
        """Queries sent since the client was created (for benchmarks and the operator's own metrics)."""
        self._client = httpx.AsyncClient(
            base_url=self.url,
            timeout=httpx.Timeout(timeout),
            # retries=0: a refused connection is reported now, not retried inside the tick.
            transport=transport or httpx.AsyncHTTPTransport(retries=0),
            headers=headers,
        )

    @classmethod
    def from_source(
        cls, source: PrometheusSource, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> PrometheusClient:
        """A client for spec.analysis.prometheus, with its per-query timeout."""
        return cls(source.url, timeout=seconds(source.timeout), transport=transport)

    async def query(self, promql: str, at: datetime | None = None) -> list[Sample]:
        """Runs one instant query (POST /api/v1/query) at `at` (default: the server's now)."""
        self.queries_issued += 1
        # Plain seconds: Prometheus reads a float here, while "1.5s" would be refused as bad_data.
        form = {"query": promql, "timeout": f"{self.timeout:g}"}
        if at is not None:
            form["time"] = f"{at.timestamp():.3f}"
        try:
            # One deadline for the whole exchange: httpx's timeout is per read, which a slow drip never trips.
            async with asyncio.timeout(self.timeout):
                status, body = await self._post(form)
        except httpx.ConnectTimeout as error:
            raise Unavailable(
                f"cannot connect to {self.shown} within {self.timeout:g}s: {self._scrub(error)}"
            ) from None
        except (httpx.TimeoutException, TimeoutError):
            raise QueryTimeout(f"no answer from {self.shown} within {self.timeout:g}s") from None
        except httpx.HTTPError as error:
            raise Unavailable(f"cannot reach {self.shown}: {self._scrub(error)}") from None
        return parse_response(status, body)

    async def _post(self, form: dict[str, str]) -> tuple[int, bytes]:
        async with self._client.stream("POST", "/api/v1/query", data=form) as response:
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > MAX_RESPONSE_BYTES:
                    raise Unavailable(
                        f"{self.shown} answered more than {MAX_RESPONSE_BYTES} bytes; the answer was not read",
                        status=response.status_code,
                    )
            return response.status_code, bytes(body)

    def _scrub(self, error: Exception) -> str:
        return repr(error).replace(self.url, self.shown)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> PrometheusClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


class PrometheusPool:
    """One client per (URL, timeout), shared by every rollout that reads the same Prometheus."""

    def __init__(self, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.transport = transport
        """Transport for every client (tests inject an httpx.MockTransport); None: real HTTP."""
        self.clients: dict[tuple[str, float], PrometheusClient] = {}

    def for_source(self, source: PrometheusSource) -> PrometheusClient:
        key = (source.url, seconds(source.timeout))
        if key not in self.clients:
            self.clients[key] = PrometheusClient.from_source(source, transport=self.transport)
        return self.clients[key]

    async def aclose(self) -> None:
        for client in self.clients.values():
            await client.aclose()
        self.clients.clear()
