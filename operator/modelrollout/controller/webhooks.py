"""Preflight gates and decision notifications over HTTP (httpx), with timeouts and no retries."""

from __future__ import annotations

import logging
from typing import Any

import httpx

from modelrollout.api.common import seconds
from modelrollout.api.spec import Gate, ModelRolloutSpec, Webhook
from modelrollout.plan.model import GateResult

log = logging.getLogger("modelrollout.webhooks")
# A gate's reason is copied into status.message, two conditions and the history: an unbounded one (a whole
# report pasted in) would push the status past the API server's request size and stall the rollout.
REASON_LIMIT = 256


def _bounded(reason: str) -> str:
    if len(reason) <= REASON_LIMIT:
        return reason
    return f"{reason[:REASON_LIMIT]}... ({len(reason) - REASON_LIMIT} more characters)"


async def _post(http: httpx.AsyncClient, hook: Webhook, payload: dict[str, Any]) -> httpx.Response:
    return await http.post(hook.url, json=payload, timeout=seconds(hook.timeout))


async def ask_gate(http: httpx.AsyncClient, gate: Gate, context: dict[str, Any]) -> GateResult:
    """Allowed only on an explicit {"allowed": true}; a deny, an error, a timeout or garbage refuses."""
    try:
        response = await _post(http, gate.webhook, context)
    except httpx.TimeoutException:
        return GateResult(gate.name, False, f"no answer within {gate.webhook.timeout}")
    except httpx.HTTPError as error:
        return GateResult(gate.name, False, f"unreachable: {type(error).__name__}: {error}")
    if response.status_code // 100 != 2:
        return GateResult(gate.name, False, f"answered HTTP {response.status_code}")
    try:
        answer = response.json()
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


async def notify(http: httpx.AsyncClient, spec: ModelRolloutSpec, payload: dict[str, Any]) -> int:
    """Sends a decision to every notification webhook; returns how many failed (they are logged, not retried)."""
    failed = 0
    for target in spec.rollback.notify:
        try:
            response = await _post(http, target.webhook, payload)
            response.raise_for_status()
        except httpx.HTTPError as error:
            failed += 1
            log.warning("notification to %s failed: %s", target.webhook.url, error)
    return failed
