"""One reconcile tick of one ModelRollout: read, observe, ask the planner, commit, apply, announce.

The tick reads the resource, its Deployments and (when due) Prometheus; `plan` decides; the new status is
written first (the commit point: it is the operator's only memory, and the routes and workloads derive from
it), then the routes (a rollback is one VirtualService write), then workloads, then Events and notifications.
A failed status write carries out nothing; a failed route or workload write after it is retried by the next
tick from the committed status, so no decision is lost or undone, and none is taken twice.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from modelrollout.api.common import seconds
from modelrollout.api.spec import ModelRolloutSpec
from modelrollout.api.status import ModelRolloutStatus
from modelrollout.api.validation import describe
from modelrollout.controller.apply import apply_actions, report_drift
from modelrollout.controller.observe import observe
from modelrollout.controller.record import announce, record_refusal, write_status
from modelrollout.controller.reference import RolloutRef
from modelrollout.controller.runtime import Runtime
from modelrollout.errors import KubeError
from modelrollout.identity import MAX_NAME, NAME_TOO_LONG
from modelrollout.plan import plan
from modelrollout.plan.conditions import applying, reconciled

log = logging.getLogger("modelrollout.controller")
RETRY_AFTER_ERROR = 5.0
CONFLICT = 409
RETRY_AFTER_CONFLICT = 0.0
"""The object changed since this tick read it (a command, a spec edit): decide again on the fresh copy."""
IDLE_INTERVAL = 30.0
"""How often a rollout without a readable spec is looked at again (a spec change wakes it sooner)."""


@dataclass
class TickReport:
    """What a tick did; the daemon sleeps `next_in` seconds (less when woken)."""

    next_in: float
    phase: str | None = None
    route_written: bool = False
    routes_written_at: float | None = None
    analysis_evaluated_at: datetime | None = None


class Reconciler:
    """Runs ticks for one rollout at a time; stateless beyond the Runtime's caches."""

    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime

    async def tick(self, namespace: str, name: str) -> TickReport:
        started = time.monotonic()
        try:
            async with self.rt.tick_lock(namespace, name):
                return await self._tick(namespace, name)
        except KubeError as error:
            if error.status != CONFLICT:
                raise
            # Someone wrote the rollout since this tick read it (a command, or another replica that now
            # leads): the plan was made from a stale position, so nothing of it is recorded; plan again now.
            self.rt.metrics.errors.labels(namespace, name, "Conflict").inc()
            return TickReport(next_in=0.0)
        finally:
            self.rt.metrics.tick_seconds.observe(time.monotonic() - started)
            for kind, count in self.rt.kube.writes.items():
                self.rt.metrics.api_writes.labels(kind).inc(count)
            self.rt.kube.writes.clear()
            for key, count in self.rt.kube.requests.items():
                verb, _, resource = key.partition(" ")
                self.rt.metrics.api_requests.labels(verb, resource).inc(count)
            self.rt.kube.requests.clear()
            issued = sum(client.queries_issued for client in self.rt.prometheus.clients.values())
            self.rt.metrics.prometheus_requests.inc(max(0, issued - self.rt.queries_reported))
            self.rt.queries_reported = issued

    async def _tick(self, namespace: str, name: str) -> TickReport:
        rt = self.rt
        body = await rt.kube.get_rollout(namespace, name)
        if body is None:
            rt.forget(namespace, name)
            return TickReport(next_in=IDLE_INTERVAL)
        if (body.get("metadata") or {}).get("deletionTimestamp"):
            return TickReport(next_in=IDLE_INTERVAL)
        ref = RolloutRef.from_object(body)
        raw_status = body.get("status") or {}
        if len(ref.name) > MAX_NAME:  # admitted before the CRD said so: every label write would fail
            await record_refusal(rt, ref, raw_status, NAME_TOO_LONG)
            return TickReport(next_in=IDLE_INTERVAL)
        try:
            spec = ModelRolloutSpec.model_validate(body.get("spec") or {})
        except ValidationError as error:
            await record_refusal(rt, ref, raw_status, describe(error, prefix="spec"))
            rt.metrics.errors.labels(namespace, name, "InvalidSpec").inc()
            return TickReport(next_in=IDLE_INTERVAL)
        try:
            status = ModelRolloutStatus.model_validate(raw_status)
        except ValidationError as error:
            # A status this version cannot read (hand-edited or from a newer operator): never guess a position.
            await record_refusal(rt, ref, raw_status, describe(error, prefix="status"))
            return TickReport(next_in=IDLE_INTERVAL)
        return await self._decide(ref, spec, status, raw_status)

    async def _decide(
        self,
        ref: RolloutRef,
        spec: ModelRolloutSpec,
        status: ModelRolloutStatus,
        raw_status: dict[str, Any],
    ) -> TickReport:
        rt = self.rt
        now = rt.now()
        observed = await observe(rt, ref, spec, status, now)
        result = plan(spec, status, observed.observations)
        new_status = result.status
        analysed = observed.observations.analysis is not None
        report = TickReport(
            next_in=seconds(spec.analysis.interval),
            phase=new_status.phase,
            analysis_evaluated_at=now if analysed else None,
        )
        # The status write is the commit point: once it lands, the decision (and this tick's analysis) is
        # durable, and the routes and workloads below, which derive from it, are re-applied by every later
        # tick until they match. A crash, a cancellation or a failed write after this line loses nothing.
        applying(status, new_status, now, ref.generation)
        try:
            version, stored = await write_status(rt, ref, raw_status, new_status, ref.resource_version)
        except KubeError as error:
            return self._not_committed(ref, error, report)
        rt.metrics.observe_status(ref.namespace, ref.name, new_status)
        await report_drift(rt, ref, spec, status, new_status, result.actions, observed.routes_object)
        written, at, failure = await apply_actions(
            rt, ref, spec, result.actions, observed.deployments, observed.routes_object
        )
        report.route_written, report.routes_written_at = written, at
        failure = failure or observed.observations.routes_refused
        reconciled(new_status, failure, now, ref.generation)
        if failure is not None:
            rt.metrics.errors.labels(ref.namespace, ref.name, "ApplyFailed").inc()
            report.next_in = min(report.next_in, RETRY_AFTER_ERROR)
        try:
            await write_status(rt, ref, stored, new_status, version)  # only when Reconciled changed
        except KubeError as error:
            log.warning("%s: the decision is recorded, its outcome could not be: %s", ref, error)
        await announce(rt, ref, spec, new_status, result.actions)
        return report

    def _not_committed(self, ref: RolloutRef, error: KubeError, report: TickReport) -> TickReport:
        """The status write failed: nothing was carried out, so nothing is half-done; decide again soon."""
        reason = "Conflict" if error.conflict else "StatusWriteFailed"
        log.warning("%s: decision not recorded, deciding again: %s", ref, error)
        self.rt.metrics.errors.labels(ref.namespace, ref.name, reason).inc()
        report.next_in = RETRY_AFTER_CONFLICT if error.conflict else RETRY_AFTER_ERROR
        report.route_written = False
        return report
