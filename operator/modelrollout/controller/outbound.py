"""Outbound HTTP calls a rollout asks for: preflight gates and decision notifications (httpx, no retries).

Not to be confused with admission webhooks: the operator registers none. These are calls *it* makes, to
endpoints the rollout's spec names, each with its own timeout.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime
from typing import Any

import httpx

from modelrollout.api.common import redact_url, seconds
from modelrollout.api.spec import Gate, ModelRolloutSpec, Webhook
from modelrollout.api.status import ModelRolloutStatus
from modelrollout.controller.reference import RolloutRef
from modelrollout.plan import GateResult, Notify
from modelrollout.workloads.render import fingerprint

log = logging.getLogger("modelrollout.outbound")
# A gate's reason is copied into status.message, two conditions and the history: an unbounded one (a whole
# report pasted in) would push the status past the API server's request size and stall the rollout.
REASON_LIMIT = 256


def _bounded(reason: str) -> str:
    if len(reason) <= REASON_LIMIT:
        return reason
    return f"{reason[:REASON_LIMIT]}... ({len(reason) - REASON_LIMIT} more characters)"


MAX_ANSWER_BYTES = 64 * 1024
"""A gate's answer is one small JSON object; a larger body is refused unread (one operator, many tenants)."""


class AnswerTooLarge(Exception):
    """The endpoint sent more than MAX_ANSWER_BYTES."""


async def _post(http: httpx.AsyncClient, hook: Webhook, payload: dict[str, Any]) -> tuple[int, bytes]:
    """POSTs `payload`; (status, body) within one deadline for the whole exchange (httpx's timeout is per
    read, which a slow drip never trips), the body read only up to MAX_ANSWER_BYTES."""
    async with asyncio.timeout(seconds(hook.timeout)):
        async with http.stream("POST", hook.url, json=payload, timeout=seconds(hook.timeout)) as response:
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > MAX_ANSWER_BYTES:
                    raise AnswerTooLarge(f"answered more than {MAX_ANSWER_BYTES} bytes")
            return response.status_code, bytes(body)


def _scrub(error: BaseException, hook: Webhook) -> str:
    """The error without the URL's credentials or query values (it goes to status and logs)."""
    return f"{type(error).__name__}: {error}".replace(hook.url, redact_url(hook.url))


# Gates -------------------------------------------------------------------------------------------------------
def gate_context(ref: RolloutRef, spec: ModelRolloutSpec, status: ModelRolloutStatus) -> dict[str, Any]:
    """What a gate sees: the model, both versions with schemas and fingerprints."""
    try:
        printed: dict[str, Any] | None = fingerprint(spec, spec.model.version, spec.model.uri).wire()
    except ValueError:
        printed = None
    return {
        "rollout": {"name": ref.name, "namespace": ref.namespace, "uid": ref.uid or None},
        "model": spec.model.name,
        "candidate": {
            "version": spec.model.version,
            "uri": spec.model.uri,
            "schema": spec.model.serving_schema.wire() if spec.model.serving_schema else None,
            "fingerprint": printed,
        },
        "stable": status.stable.wire() if status.stable else None,
    }


async def ask_gate(http: httpx.AsyncClient, gate: Gate, context: dict[str, Any]) -> GateResult:
    """Allowed only on an explicit {"allowed": true}; a deny, an error, a timeout or garbage refuses."""
    try:
        status, body = await _post(http, gate.webhook, context)
    except (httpx.TimeoutException, TimeoutError):
        return GateResult(gate.name, False, f"no answer within {gate.webhook.timeout}")
    except AnswerTooLarge as error:
        return GateResult(gate.name, False, str(error))
    except httpx.HTTPError as error:
        return GateResult(gate.name, False, f"unreachable: {_scrub(error, gate.webhook)}")
    if status // 100 != 2:
        return GateResult(gate.name, False, f"answered HTTP {status}")
    try:
        answer = json.loads(body)
    except ValueError:
        return GateResult(gate.name, False, "answered something that is not JSON")
    if not isinstance(answer, dict):
        return GateResult(gate.name, False, "answer is not a JSON object")
    reason = str(answer.get("reason") or ("allowed" if answer.get("allowed") is True else "denied"))
    return GateResult(gate.name, answer.get("allowed") is True, _bounded(reason))


async def ask_gates(
    http: httpx.AsyncClient, spec: ModelRolloutSpec, context: dict[str, Any]
) -> list[GateResult]:
    return [await ask_gate(http, gate, context) for gate in spec.gates]


# Notifications -----------------------------------------------------------------------------------------------
def decision_payload(ref: RolloutRef, status: ModelRolloutStatus, action: Notify) -> dict[str, Any]:
    """The JSON a notification receiver gets for one decision, with its evidence."""
    return {
        "rollout": {"name": ref.name, "namespace": ref.namespace},
        "reason": action.reason,
        "message": action.message,
        "phase": status.phase,
        "stable": status.stable.wire() if status.stable else None,
        "candidate": status.candidate.wire() if status.candidate else None,
        "evidence": [g.wire() for g in action.evidence],
        "time": datetime.now(UTC).isoformat(),
    }


async def notify(http: httpx.AsyncClient, spec: ModelRolloutSpec, payload: dict[str, Any]) -> int:
    """Sends a decision to every notification webhook; returns how many failed (they are logged, not retried)."""
    failed = 0
    for target in spec.rollback.notify:
        hook = target.webhook
        try:
            status, _ = await _post(http, hook, payload)
        except (httpx.HTTPError, TimeoutError, AnswerTooLarge) as error:
            failed += 1
            log.warning("notification to %s failed: %s", redact_url(hook.url), _scrub(error, hook))
            continue
        if status // 100 != 2:
            failed += 1
            log.warning("notification to %s failed: HTTP %d", redact_url(hook.url), status)
    return failed


class Outbound:
    """The one HTTP client for gates and notifications (no retries: the next tick, or nobody, retries)."""

    def __init__(self, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.http = httpx.AsyncClient(transport=transport or httpx.AsyncHTTPTransport(retries=0))

    async def ask_gates(self, spec: ModelRolloutSpec, context: dict[str, Any]) -> list[GateResult]:
        return await ask_gates(self.http, spec, context)

    async def notify(self, spec: ModelRolloutSpec, payload: dict[str, Any]) -> int:
        return await notify(self.http, spec, payload)

    async def aclose(self) -> None:
        await self.http.aclose()
