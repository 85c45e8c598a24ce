"""One reconcile tick of one ModelRollout: read, ask the planner, apply, record.

The tick reads the resource, its Deployments and (when due) Prometheus; `plan` decides; the routes are written
first (a rollback is one VirtualService write), then workloads, then status, events and notifications. A failed
write keeps the previous status, so the next tick retries from the same place: nothing is half-applied.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from pydantic import ValidationError

from modelrollout.analysis.prometheus import PrometheusClient
from modelrollout.analysis.run import analyze
from modelrollout.api import commands
from modelrollout.api.common import seconds
from modelrollout.api.spec import ModelRolloutSpec
from modelrollout.api.status import ModelRolloutStatus
from modelrollout.api.validation import describe
from modelrollout.controller.metrics import OperatorMetrics
from modelrollout.controller.webhooks import ask_gates, notify
from modelrollout.kube import Kube, KubeError
from modelrollout.plan.conditions import set_condition
from modelrollout.plan.machine import judged_phase, needs, plan
from modelrollout.plan.model import (
    Action,
    Commands,
    EnsureWorkload,
    Event,
    Notify,
    Observations,
    RemoveWorkload,
    SetRoutes,
    WorkloadState,
)
from modelrollout.traffic.istio import desired_virtual_service, merge_routes, owned_routes, routes_equal
from modelrollout.workloads.render import (
    TEMPLATE_HASH_ANNOTATION,
    fingerprint,
    render_deployment,
    render_service,
)

log = logging.getLogger("modelrollout.controller")
VERSION_LABEL = "modelrollout.io/version"
CLAIM_ANNOTATION = "modelrollout.io/rollout"
RETRY_AFTER_ERROR = 5.0
# Status fields that change on every evaluation without changing any decision: refreshed at most every
# `status_refresh`, so a steady pause costs no API writes.
VOLATILE_GUARD_FIELDS = ("stable", "canary", "threshold", "samples", "reason")


@dataclass
class Runtime:
    """What every tick shares: clients, metrics and per-rollout memory that need not survive a restart."""

    kube: Kube
    http: httpx.AsyncClient
    metrics: OperatorMetrics
    status_refresh: float = 60.0
    prometheus: dict[tuple[str, float], PrometheusClient] = field(default_factory=dict)
    last_status_write: dict[tuple[str, str], float] = field(default_factory=dict)
    background: set[asyncio.Task[Any]] = field(default_factory=set)
    notify_locks: dict[tuple[str, str], asyncio.Lock] = field(default_factory=dict)

    def notify_lock(self, namespace: str, name: str) -> asyncio.Lock:
        return self.notify_locks.setdefault((namespace, name), asyncio.Lock())

    def prometheus_for(self, spec: ModelRolloutSpec) -> PrometheusClient:
        source = spec.analysis.prometheus
        key = (source.url, seconds(source.timeout))
        if key not in self.prometheus:
            self.prometheus[key] = PrometheusClient.from_source(source)
        return self.prometheus[key]

    def spawn(self, coroutine: Any) -> None:
        task = asyncio.ensure_future(coroutine)
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    async def close(self) -> None:
        for task in list(self.background):
            task.cancel()
        for client in self.prometheus.values():
            await client.aclose()
        await self.http.aclose()
        await self.kube.close()


@dataclass
class TickReport:
    """What a tick did; the daemon sleeps `next_in` seconds (less when woken)."""

    next_in: float
    phase: str | None = None
    route_written: bool = False
    routes_written_at: float | None = None
    analysis_evaluated_at: datetime | None = None


def _interval(spec: ModelRolloutSpec | None) -> float:
    return seconds(spec.analysis.interval) if spec else 30.0


def _observed_workloads(deployments: list[dict[str, Any]], uid: str) -> dict[str, dict[str, Any]]:
    """Our Deployments by model version; one carrying another rollout's owner reference is not ours."""
    found: dict[str, dict[str, Any]] = {}
    for item in deployments:
        meta = item.get("metadata", {})
        owners = meta.get("ownerReferences") or []
        if not any(o.get("uid") == uid for o in owners):
            continue
        version = (meta.get("labels") or {}).get(VERSION_LABEL)
        if version:
            found[version] = item
    return found


def _state(item: dict[str, Any], version: str) -> WorkloadState:
    spec, status = item.get("spec") or {}, item.get("status") or {}
    return WorkloadState(
        version=version,
        replicas=int(spec.get("replicas") or 0),
        ready_replicas=int(status.get("readyReplicas") or 0),
    )


def _commands(annotations: dict[str, str]) -> Commands:
    promote, full = commands.promote_id(annotations)
    return Commands(
        paused=commands.is_paused(annotations),
        promote=promote,
        promote_full=full,
        abort=commands.abort_id(annotations),
        retry=commands.retry_id(annotations),
    )


def _decision_relevant(status: dict[str, Any]) -> dict[str, Any]:
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


def gate_context(body: dict[str, Any], spec: ModelRolloutSpec, status: ModelRolloutStatus) -> dict[str, Any]:
    """What a gate sees: the model, both versions with schemas and fingerprints."""
    meta = body["metadata"]
    try:
        printed: dict[str, Any] | None = fingerprint(spec, spec.model.version, spec.model.uri).wire()
    except ValueError:
        printed = None
    return {
        "rollout": {"name": meta["name"], "namespace": meta["namespace"], "uid": meta.get("uid")},
        "model": spec.model.name,
        "candidate": {
            "version": spec.model.version,
            "uri": spec.model.uri,
            "schema": spec.model.serving_schema.wire() if spec.model.serving_schema else None,
            "fingerprint": printed,
        },
        "stable": status.stable.wire() if status.stable else None,
    }


class Reconciler:
    """Runs ticks for one rollout at a time; stateless beyond the Runtime's caches."""

    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime

    async def tick(self, namespace: str, name: str) -> TickReport:
        started = time.monotonic()
        try:
            return await self._tick(namespace, name)
        finally:
            self.rt.metrics.tick_seconds.observe(time.monotonic() - started)
            for kind, count in self.rt.kube.writes.items():
                self.rt.metrics.api_writes.labels(kind).inc(count)
            self.rt.kube.writes.clear()

    async def _tick(self, namespace: str, name: str) -> TickReport:
        rt = self.rt
        body = await rt.kube.get_rollout(namespace, name)
        if body is None:
            rt.metrics.forget(namespace, name)
            return TickReport(next_in=30.0)
        meta = body["metadata"]
        if meta.get("deletionTimestamp"):
            return TickReport(next_in=30.0)
        generation = int(meta.get("generation") or 0)
        raw_status = body.get("status") or {}
        try:
            spec = ModelRolloutSpec.model_validate(body.get("spec") or {})
        except ValidationError as error:
            await self._invalid(body, raw_status, describe(error, prefix="spec"), generation)
            rt.metrics.errors.labels(namespace, name, "InvalidSpec").inc()
            return TickReport(next_in=30.0)
        try:
            status = ModelRolloutStatus.model_validate(raw_status)
        except ValidationError as error:
            # A status this version cannot read (hand-edited or from a newer operator): never guess a position.
            await self._invalid(body, raw_status, describe(error, prefix="status"), generation)
            return TickReport(next_in=30.0)

        now = datetime.now(UTC)
        need = needs(spec, status, now)
        deployments = _observed_workloads(await rt.kube.list_deployments(namespace, name), meta["uid"])
        observed = {version: _state(item, version) for version, item in deployments.items()}
        gates = await ask_gates(rt.http, spec, gate_context(body, spec, status)) if need.gates else None
        analysis = None
        phase = judged_phase(status)
        if need.analysis and phase is not None and status.stable_version and status.candidate_version:
            begun = time.monotonic()
            analysis = await analyze(
                rt.prometheus_for(spec),
                spec,
                namespace,
                "shadow" if phase == "shadow" else "canary",
                status.stable_version,
                status.candidate_version,
                status.step_since or status.phase_since or now,
                now,
            )
            rt.metrics.observe_analysis(namespace, name, analysis, time.monotonic() - begun)
        observations = Observations(
            now=now,
            generation=generation,
            workloads=observed,
            analysis=analysis,
            gates=gates,
            commands=_commands(meta.get("annotations") or {}),
        )
        result = plan(spec, status, observations)
        new_status = result.status
        if analysis is not None:
            self._metrics_condition(new_status, analysis.errors, now, generation)

        report = TickReport(
            next_in=_interval(spec), phase=new_status.phase, analysis_evaluated_at=now if analysis else None
        )
        failure = await self._apply(body, spec, result.actions, deployments, report)
        if failure is not None:
            # Keep the last good position; say what failed. The next tick retries the same decision.
            kept = status.model_copy(deep=True)
            set_condition(kept, "Reconciled", "False", "ApplyFailed", failure, now, generation)
            await self._write_status(namespace, name, raw_status, kept, force=True)
            rt.metrics.errors.labels(namespace, name, "ApplyFailed").inc()
            report.next_in = min(report.next_in, RETRY_AFTER_ERROR)
            return report
        set_condition(new_status, "Reconciled", "True", "Applied", "", now, generation)
        await self._write_status(namespace, name, raw_status, new_status)
        rt.metrics.observe_status(namespace, name, new_status)
        await self._announce(body, spec, new_status, result.actions)
        return report

    # Applying actions ------------------------------------------------------------------------------------
    async def _apply(
        self,
        body: dict[str, Any],
        spec: ModelRolloutSpec,
        actions: list[Action],
        deployments: dict[str, dict[str, Any]],
        report: TickReport,
    ) -> str | None:
        """Routes first, then workloads. Returns what failed, or None."""
        try:
            for action in actions:
                if isinstance(action, SetRoutes):
                    report.route_written = await self._routes(body, spec, action)
                    if report.route_written:
                        report.routes_written_at = time.monotonic()
            for action in actions:
                if isinstance(action, EnsureWorkload):
                    await self._ensure(body, spec, action, deployments.get(action.version))
                elif isinstance(action, RemoveWorkload):
                    live = deployments.get(action.version)
                    if live is not None:
                        await self.rt.kube.delete_workload(
                            body["metadata"]["namespace"], live["metadata"]["name"]
                        )
        except KubeError as error:
            return str(error)
        except ValueError as error:  # rendering refused the template
            return f"cannot render workloads: {error}"
        return None

    async def _routes(self, body: dict[str, Any], spec: ModelRolloutSpec, action: SetRoutes) -> bool:
        meta = body["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        owned = owned_routes(
            spec,
            name=name,
            namespace=namespace,
            stable=action.stable,
            candidate=action.candidate,
            weights=action.weights,
            mirror_percent=action.mirror_percent,
        )
        vs_name = spec.traffic.istio.virtual_service
        for attempt in range(3):
            live = await self.rt.kube.get_virtual_service(namespace, vs_name)
            if live is None:
                desired = desired_virtual_service(
                    spec, name=name, namespace=namespace, uid=meta["uid"], routes=owned
                )
                desired["metadata"].setdefault("annotations", {})[CLAIM_ANNOTATION] = name
                try:
                    await self.rt.kube.create_virtual_service(desired)
                    return True
                except KubeError as error:
                    if error.conflict and attempt < 2:
                        continue
                    raise
            claimed = ((live.get("metadata") or {}).get("annotations") or {}).get(CLAIM_ANNOTATION)
            if claimed is not None and claimed != name:
                raise KubeError(
                    f"VirtualService {namespace}/{vs_name}",
                    0,
                    f"its routes are managed by ModelRollout {claimed}; one VirtualService serves one rollout",
                )
            http = list((live.get("spec") or {}).get("http") or [])
            merged = merge_routes(http, owned)
            if routes_equal(http, merged) and claimed == name:
                return False
            patch = {"metadata": {"annotations": {CLAIM_ANNOTATION: name}}, "spec": {"http": merged}}
            try:
                await self.rt.kube.update_virtual_service(live, patch)
                return True
            except KubeError as error:
                if error.conflict and attempt < 2:
                    continue  # someone changed it since we read it: merge again on the fresh copy
                raise
        return False

    async def _ensure(
        self,
        body: dict[str, Any],
        spec: ModelRolloutSpec,
        action: EnsureWorkload,
        live: dict[str, Any] | None,
    ) -> None:
        meta = body["metadata"]
        namespace, name, uid = meta["namespace"], meta["name"], meta["uid"]
        if live is not None and not action.render:
            if int((live.get("spec") or {}).get("replicas") or 0) != action.replicas:
                await self.rt.kube.scale(namespace, live["metadata"]["name"], action.replicas)
            return
        desired = render_deployment(name, namespace, uid, spec, action.version, action.uri, action.replicas)
        if live is not None:
            same_template = (live["metadata"].get("annotations") or {}).get(
                TEMPLATE_HASH_ANNOTATION
            ) == desired["metadata"]["annotations"][TEMPLATE_HASH_ANNOTATION]
            if same_template and int((live.get("spec") or {}).get("replicas") or 0) == action.replicas:
                return
        elif not action.render:
            log.warning(
                "%s/%s: Deployment of %s is missing; recreating it from the current template",
                namespace,
                name,
                action.version,
            )
        await self.rt.kube.apply(render_service(name, namespace, uid, spec, action.version))
        await self.rt.kube.apply(desired)

    # Status, events, notifications --------------------------------------------------------------------------
    async def _write_status(
        self,
        namespace: str,
        name: str,
        before: dict[str, Any],
        status: ModelRolloutStatus,
        *,
        force: bool = False,
    ) -> None:
        after = status.wire()
        if after == before:
            return
        key = (namespace, name)
        last = self.rt.last_status_write.get(key)
        fresh = last is not None and time.monotonic() - last < self.rt.status_refresh
        if not force and fresh and _decision_relevant(after) == _decision_relevant(before):
            return
        await self.rt.kube.patch_rollout_status(namespace, name, after)
        self.rt.last_status_write[key] = time.monotonic()

    async def _invalid(
        self, body: dict[str, Any], raw_status: dict[str, Any], message: str, generation: int
    ) -> None:
        meta = body["metadata"]
        try:
            status = ModelRolloutStatus.model_validate(raw_status)
        except ValidationError:
            status = ModelRolloutStatus()
        set_condition(
            status, "InvalidSpec", "True", "ValidationFailed", message, datetime.now(UTC), generation
        )
        status.message = message
        status.observed_generation = generation
        before = status.wire()
        if before != raw_status:
            await self.rt.kube.patch_rollout_status(meta["namespace"], meta["name"], before)
            await self.rt.kube.create_event(body, "Warning", "InvalidSpec", message)

    def _metrics_condition(
        self, status: ModelRolloutStatus, errors: list[str], now: datetime, generation: int
    ) -> None:
        if errors:
            set_condition(status, "MetricsAvailable", "False", "QueryFailed", errors[0], now, generation)
        else:
            set_condition(status, "MetricsAvailable", "True", "QueriesAnswered", "", now, generation)

    async def _announce(
        self, body: dict[str, Any], spec: ModelRolloutSpec, status: ModelRolloutStatus, actions: list[Action]
    ) -> None:
        meta = body["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        payloads = []
        for action in actions:
            if isinstance(action, Event):
                self.rt.metrics.decisions.labels(namespace, name, action.reason).inc()
                try:
                    await self.rt.kube.create_event(body, action.type, action.reason, action.message)
                except KubeError as error:
                    log.warning("%s/%s: %s", namespace, name, error)
            elif isinstance(action, Notify) and spec.rollback.notify:
                payloads.append(
                    {
                        "rollout": {"name": name, "namespace": namespace},
                        "reason": action.reason,
                        "message": action.message,
                        "phase": status.phase,
                        "stable": status.stable.wire() if status.stable else None,
                        "candidate": status.candidate.wire() if status.candidate else None,
                        "evidence": [g.wire() for g in action.evidence],
                        "time": datetime.now(UTC).isoformat(),
                    }
                )
        if payloads:
            # Off the tick (a slow receiver must not delay a rollback), but one rollout's decisions in order.
            self.rt.spawn(self._notify(spec, payloads, namespace, name))

    async def _notify(
        self, spec: ModelRolloutSpec, payloads: list[dict[str, Any]], namespace: str, name: str
    ) -> None:
        async with self.rt.notify_lock(namespace, name):
            for payload in payloads:
                failed = await notify(self.rt.http, spec, payload)
                if failed:
                    self.rt.metrics.notification_failures.labels(namespace, name).inc(failed)
