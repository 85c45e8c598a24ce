"""Gates and notifications a tenant points anywhere cannot exhaust the operator or leak the URL's secrets."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import httpx
import pytest

from modelrollout.api.spec import Gate, ModelRolloutSpec
from modelrollout.controller.outbound import MAX_ANSWER_BYTES, ask_gate, notify
from tests.support.world import make_spec

SECRET_URL = "https://robot:hunter2@gates.example.com/check?token=s3cr3t"


class Drip(httpx.AsyncByteStream):
    async def __aiter__(self) -> AsyncIterator[bytes]:
        while True:
            await asyncio.sleep(0.05)
            yield b" "


class Flood(httpx.AsyncByteStream):
    async def __aiter__(self) -> AsyncIterator[bytes]:
        for _ in range(MAX_ANSWER_BYTES // 1024 + 2):
            yield b"x" * 1024


def gate(url: str = "https://gates.example.com/check", timeout: str = "500ms") -> Gate:
    return Gate.model_validate({"name": "leakage", "webhook": {"url": url, "timeout": timeout}})


def http(answer: httpx.Response | Exception) -> httpx.AsyncClient:
    def handle(request: httpx.Request) -> httpx.Response:
        if isinstance(answer, Exception):
            raise answer
        return answer

    return httpx.AsyncClient(transport=httpx.MockTransport(handle))


async def test_a_slow_drip_answer_ends_at_the_gate_deadline() -> None:
    result = await asyncio.wait_for(ask_gate(http(httpx.Response(200, stream=Drip())), gate(), {}), 30)
    assert not result.allowed
    assert result.reason == "no answer within 500ms"


async def test_an_answer_over_the_cap_is_refused_unread() -> None:
    result = await ask_gate(http(httpx.Response(200, stream=Flood())), gate(timeout="10s"), {})
    assert not result.allowed
    assert result.reason == f"answered more than {MAX_ANSWER_BYTES} bytes"


async def test_an_unreachable_gate_is_reported_without_the_urls_secrets() -> None:
    error = httpx.ConnectError(f"cannot connect to {SECRET_URL}")
    result = await ask_gate(http(error), gate(SECRET_URL), {})
    assert not result.allowed
    assert "hunter2" not in result.reason
    assert "s3cr3t" not in result.reason
    assert "gates.example.com/check?token=redacted" in result.reason


async def test_a_failed_notification_is_logged_without_the_urls_secrets(
    caplog: pytest.LogCaptureFixture,
) -> None:
    spec: ModelRolloutSpec = make_spec(rollback={"notify": [{"webhook": {"url": SECRET_URL}}]})
    with caplog.at_level(logging.WARNING, logger="modelrollout.outbound"):
        assert await notify(http(httpx.Response(500)), spec, {}) == 1
        assert await notify(http(httpx.ConnectError(f"refused: {SECRET_URL}")), spec, {}) == 1
    logged = caplog.text
    assert "notification to https://gates.example.com/check?token=redacted failed" in logged
    assert "hunter2" not in logged
    assert "s3cr3t" not in logged
