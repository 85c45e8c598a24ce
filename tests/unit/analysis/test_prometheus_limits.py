"""A Prometheus a tenant names cannot exhaust the operator: bytes are capped, the whole exchange has one
deadline, and credentials in its URL never reach an error message (and so status, Events or logs)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from modelrollout.analysis.prometheus import MAX_RESPONSE_BYTES, PrometheusClient, QueryTimeout, Unavailable
from modelrollout.api.common import redact_url

SECRET_URL = "http://tenant:hunter2@prometheus.test:9090/?token=s3cr3t"


class Drip(httpx.AsyncByteStream):
    """A body that never ends: one byte every `pause` seconds (each read is quick, so httpx never times out)."""

    def __init__(self, pause: float) -> None:
        self.pause = pause

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while True:
            await asyncio.sleep(self.pause)
            yield b" "


class Flood(httpx.AsyncByteStream):
    """A body larger than the cap, sent as fast as it is read."""

    async def __aiter__(self) -> AsyncIterator[bytes]:
        chunk = b"x" * 65536
        for _ in range(MAX_RESPONSE_BYTES // len(chunk) + 2):
            yield chunk


async def test_a_slow_drip_body_ends_at_the_query_deadline() -> None:
    client = PrometheusClient(
        "http://prometheus.test:9090",
        timeout=0.5,
        transport=httpx.MockTransport(lambda r: httpx.Response(200, stream=Drip(0.05))),
    )
    with pytest.raises(QueryTimeout, match=r"within 0\.5s"):
        await asyncio.wait_for(client.query("up"), timeout=30)
    await client.aclose()


async def test_a_body_over_the_cap_is_refused_unread() -> None:
    client = PrometheusClient(
        "http://prometheus.test:9090",
        transport=httpx.MockTransport(lambda r: httpx.Response(200, stream=Flood())),
    )
    with pytest.raises(Unavailable, match=f"more than {MAX_RESPONSE_BYTES} bytes"):
        await client.query("up")
    await client.aclose()


async def test_credentials_in_the_url_never_reach_an_error() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"cannot connect to {SECRET_URL}", request=request)

    client = PrometheusClient(SECRET_URL, transport=httpx.MockTransport(refuse))
    with pytest.raises(Unavailable) as caught:
        await client.query("up")
    await client.aclose()
    said = str(caught.value)
    assert "hunter2" not in said
    assert "s3cr3t" not in said
    assert "prometheus.test:9090" in said


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "https://u:p@mimir.example:443/prometheus?X-Scope-OrgID=a&token=b#x",
            "https://mimir.example:443/prometheus?X-Scope-OrgID=redacted&token=redacted",
        ),
        ("http://prometheus.monitoring:9090", "http://prometheus.monitoring:9090"),
        ("http://token@hooks.example.com/a/b", "http://hooks.example.com/a/b"),
    ],
)
def test_urls_are_redacted(url: str, shown: str) -> None:
    assert redact_url(url) == shown
