"""Recording a tick: the status write (throttled when nothing decision-relevant changed), Events, notifications."""

from __future__ import annotations

import logging
import time
from typing import Any

from pydantic import ValidationError

from modelrollout.api.spec import ModelRolloutSpec
from modelrollout.api.status import ModelRolloutStatus
from modelrollout.controller.outbound import decision_payload
from modelrollout.controller.reference import RolloutRef
from modelrollout.controller.runtime import Runtime
from modelrollout.errors import KubeError
from modelrollout.plan import Action, Event, Notify
from modelrollout.plan.conditions import spec_refused

log = logging.getLogger("modelrollout.controller")
# Status fields that change on every evaluation without changing any decision: refreshed at most every
# `status_refresh`, so a steady pause costs no API writes.
VOLATILE_GUARD_FIELDS = ("stable", "canary", "threshold", "samples", "reason")


def decision_relevant(status: dict[str, Any]) -> dict[str, Any]:
    """A wire status without the evidence that changes every evaluation (values, samples, analysis time)."""
    out = {k: v for k, v in status.items() if k != "lastAnalysis"}
    slices = []
    for item in out.get("slices", []):
        item = {k: v for k, v in item.items() if k != "samples"}
        item["guards"] = [
            {k: v for k, v in g.items() if k not in VOLATILE_GUARD_FIELDS} for g in item.get("guards", [])
        ]
        slices.append(item)
    out["slices"] = slices
    return out


async def write_status(
    rt: Runtime,
    ref: RolloutRef,
    before: dict[str, Any],
    status: ModelRolloutStatus,
    resource_version: str | None,
) -> tuple[str | None, dict[str, Any]]:
    """Writes the status over `before` (read at `resource_version`) when it changed; evidence-only changes
    wait for `status_refresh`. Returns the object's version and the status now stored.

    The write lands only on `resource_version`: a change of the object since (a person's command, a spec
    edit, another operator pod) is a 409 conflict, and the tick decides again on the fresh object.
    """
    after = status.wire()
    if after == before:
        return resource_version, before
    last = rt.last_status_write.get(ref.key)
    fresh = last is not None and time.monotonic() - last < rt.status_refresh
    if fresh and decision_relevant(after) == decision_relevant(before):
        return resource_version, before
    version = await rt.kube.patch_rollout_status(ref.namespace, ref.name, after, resource_version)
    rt.last_status_write[ref.key] = time.monotonic()
    return version, after


async def record_refusal(rt: Runtime, ref: RolloutRef, raw_status: dict[str, Any], message: str) -> None:
    """InvalidSpec with the message naming the field, written once, with a Warning Event; the position is kept."""
    try:
        status = ModelRolloutStatus.model_validate(raw_status)
    except ValidationError:
        status = ModelRolloutStatus()
    spec_refused(status, message, rt.now(), ref.generation)
    after = status.wire()
    if after != raw_status:
        await rt.kube.patch_rollout_status(ref.namespace, ref.name, after, ref.resource_version)
        await rt.kube.create_event(ref.event_target(), "Warning", "InvalidSpec", message)


async def announce(
    rt: Runtime, ref: RolloutRef, spec: ModelRolloutSpec, status: ModelRolloutStatus, actions: list[Action]
) -> None:
    """Events now (a failed one is logged, not fatal); notifications off the tick, in order per rollout."""
    payloads = []
    for action in actions:
        if isinstance(action, Event):
            rt.metrics.decisions.labels(ref.namespace, ref.name, action.reason).inc()
            try:
                await rt.kube.create_event(ref.event_target(), action.type, action.reason, action.message)
            except KubeError as error:
                log.warning("%s: %s", ref, error)
        elif isinstance(action, Notify) and spec.rollback.notify:
            payloads.append(decision_payload(ref, status, action))
    if payloads:
        # Off the tick (a slow receiver must not delay a rollback), but one rollout's decisions in order.
        rt.spawn(_send(rt, ref, spec, payloads))


async def _send(rt: Runtime, ref: RolloutRef, spec: ModelRolloutSpec, payloads: list[dict[str, Any]]) -> None:
    async with rt.notify_lock(ref.namespace, ref.name):
        for payload in payloads:
            failed = await rt.outbound.notify(spec, payload)
            if failed:
                rt.metrics.notification_failures.labels(ref.namespace, ref.name).inc(failed)
