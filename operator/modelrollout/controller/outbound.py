"""Outbound HTTP calls a rollout asks for: preflight gates and decision notifications (httpx, no retries).

Not to be confused with admission webhooks: the operator registers none. These are calls *it* makes, to
endpoints the rollout's spec names, each with its own timeout.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import httpx

from modelrollout.api.common import seconds
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


async def _post(http: httpx.AsyncClient, hook: Webhook, payload: dict[str, Any]) -> httpx.Response:
    return await http.post(hook.url, json=payload, timeout=seconds(hook.timeout))


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
        try:
            response = await _post(http, target.webhook, payload)
            response.raise_for_status()
        except httpx.HTTPError as error:
            failed += 1
            log.warning("notification to %s failed: %s", target.webhook.url, error)
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
