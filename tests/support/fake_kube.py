"""An in-memory `KubeApi` for unit tests, with faults injectable per verb and resource.

It keeps objects as the API server returns them (deep copies in and out, resourceVersions that move on
every write, generation bumped by spec changes, 409 on a stale resourceVersion or an existing name), so
the controller's own conflict and error handling runs unchanged. It is not an API server: no admission,
no schema, no garbage collection; the integration tests run those for real.

Resources are named as the fault table names them: modelrollout, modelrollout/status, deployment,
deployment/scale, service, virtualservice, httproute, event. Verbs: get, list, create, patch, apply, delete.
"""

from __future__ import annotations

import asyncio
import copy
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from modelrollout.identity import ROLLOUT_LABEL, VERSION_LABEL
from modelrollout.kube import KubeError
from modelrollout.kube.clock import ServerClock

Key = tuple[str, str]  # (namespace, name)
Hook = Callable[["FakeKube"], None]


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch (null removes a key)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


@dataclass
class Fault:
    """Makes matching calls fail (or stall) as the real client would report it."""

    verb: str
    resource: str
    status: int = 500
    message: str = "injected fault"
    times: int | None = 1
    """How many matching calls fail (None: every one from now on)."""
    skip: int = 0
    """Matching calls that pass before the first failure."""
    delay: float = 0.0
    """Seconds the call takes before it fails (or, with status None, succeeds)."""
    fail: bool = True

    def matches(self, verb: str, resource: str) -> bool:
        return self.verb in (verb, "*") and self.resource in (resource, "*")


@dataclass
class Call:
    verb: str
    resource: str
    namespace: str
    name: str
    failed: bool = False


@dataclass
class FakeKube:
    """Stores rollouts, Deployments, Services, VirtualServices, HTTPRoutes and Events in memory."""

    rollouts: dict[Key, dict[str, Any]] = field(default_factory=dict)
    deployments: dict[Key, dict[str, Any]] = field(default_factory=dict)
    services: dict[Key, dict[str, Any]] = field(default_factory=dict)
    virtual_services: dict[Key, dict[str, Any]] = field(default_factory=dict)
    http_routes: dict[Key, dict[str, Any]] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    hooks: dict[tuple[str, str], list[Hook]] = field(default_factory=dict)
    after: dict[tuple[str, str], list[Hook]] = field(default_factory=dict)
    rollout_patches: list[dict[str, Any]] = field(default_factory=list)
    ready: dict[Key, int] = field(default_factory=dict)
    """Ready replicas per Deployment; a Deployment not named here is ready at its full size."""
    writes: Counter[str] = field(default_factory=Counter)
    requests: Counter[str] = field(default_factory=Counter)
    closed: bool = False
    server_time: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    """The API server's clock: every answer tells it, exactly, to `clock`."""
    clock: ServerClock = field(default_factory=ServerClock)
    _version: int = 0

    # Test controls --------------------------------------------------------------------------------------
    def fail(self, verb: str, resource: str, status: int = 500, **options: Any) -> Fault:
        fault = Fault(verb, resource, status, **options)
        self.faults.append(fault)
        return fault

    def slow(self, verb: str, resource: str, seconds: float, times: int | None = None) -> Fault:
        fault = Fault(verb, resource, delay=seconds, times=times, fail=False)
        self.faults.append(fault)
        return fault

    def on(self, verb: str, resource: str, hook: Hook, *, after: bool = False) -> None:
        """Runs `hook` just before every matching call (e.g. another writer changing the object), or just
        after each one that succeeded (e.g. an operator reacting to a write)."""
        (self.after if after else self.hooks).setdefault((verb, resource), []).append(hook)

    def _done(self, verb: str, resource: str) -> None:
        for hook in self.after.get((verb, resource), []):
            hook(self)

    def count(self, verb: str, resource: str) -> int:
        return sum(1 for c in self.calls if c.verb == verb and c.resource == resource)

    def add_rollout(self, body: dict[str, Any]) -> dict[str, Any]:
        meta = body.setdefault("metadata", {})
        meta.setdefault("namespace", "default")
        meta.setdefault("uid", f"uid-{meta['name']}")
        meta.setdefault("generation", 1)
        meta["resourceVersion"] = self._next()
        self.rollouts[(meta["namespace"], meta["name"])] = copy.deepcopy(body)
        return body

    def rollout(self, namespace: str, name: str) -> dict[str, Any]:
        return self.rollouts[(namespace, name)]

    def virtual_service(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.virtual_services.get((namespace, name))

    def http_route(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.http_routes.get((namespace, name))

    def next_version(self) -> str:
        """A new resourceVersion, for a change made straight into the store (another writer's)."""
        return self._next()

    # Internals ------------------------------------------------------------------------------------------
    def _next(self) -> str:
        self._version += 1
        return str(self._version)

    async def _enter(self, verb: str, resource: str, namespace: str, name: str, action: str) -> None:
        """Records the call, runs hooks, and applies the first matching fault."""
        call = Call(verb, resource, namespace, name)
        self.calls.append(call)
        server, local = self.server_time().timestamp(), self.clock.local()
        self.clock.observe(server, server, local, local)
        for hook in self.hooks.get((verb, resource), []):
            hook(self)
        for fault in self.faults:
            if not fault.matches(verb, resource) or fault.times == 0:
                continue
            if fault.skip > 0:
                fault.skip -= 1
                continue
            if fault.times is not None:
                fault.times -= 1
            if fault.delay:
                await asyncio.sleep(fault.delay)
            if fault.fail:
                call.failed = True
                raise KubeError(action, fault.status, fault.message)
            return

    def _refuse(self, action: str, status: int, message: str) -> KubeError:
        """The error the server answers with; the call is marked failed."""
        self.calls[-1].failed = True
        return KubeError(action, status, message)

    def _with_status(self, item: dict[str, Any]) -> dict[str, Any]:
        out = copy.deepcopy(item)
        meta = out["metadata"]
        wanted = int((out.get("spec") or {}).get("replicas") or 0)
        ready = self.ready.get((meta["namespace"], meta["name"]), wanted)
        out["status"] = {"replicas": wanted, "readyReplicas": min(ready, wanted)}
        return out

    # ModelRollouts ----------------------------------------------------------------------------------------
    async def close(self) -> None:
        self.closed = True

    async def get_rollout(self, namespace: str, name: str) -> dict[str, Any] | None:
        await self._enter("get", "modelrollout", namespace, name, f"read ModelRollout {namespace}/{name}")
        found = self.rollouts.get((namespace, name))
        return copy.deepcopy(found) if found is not None else None

    async def list_rollouts(self, namespace: str | None) -> list[dict[str, Any]]:
        await self._enter("list", "modelrollout", namespace or "", "", "list ModelRollouts")
        return [copy.deepcopy(v) for (ns, _), v in sorted(self.rollouts.items()) if namespace in (None, ns)]

    async def patch_rollout(self, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        action = f"patch ModelRollout {namespace}/{name}"
        await self._enter("patch", "modelrollout", namespace, name, action)
        stored = self.rollouts.get((namespace, name))
        if stored is None:
            raise self._refuse(action, 404, f'modelrollouts.modelrollout.io "{name}" not found')
        expected = (patch.get("metadata") or {}).get("resourceVersion")
        if expected is not None and expected != stored["metadata"]["resourceVersion"]:
            raise self._refuse(action, 409, "the object has been modified; please apply your changes")
        updated = merge_patch(stored, patch)
        if "spec" in patch and updated.get("spec") != stored.get("spec"):
            updated["metadata"]["generation"] = int(stored["metadata"].get("generation") or 1) + 1
        updated["metadata"]["resourceVersion"] = self._next()
        self.rollouts[(namespace, name)] = updated
        self.rollout_patches.append(copy.deepcopy(patch))
        self.writes["modelrollout"] += 1
        self._done("patch", "modelrollout")
        return copy.deepcopy(self.rollouts[(namespace, name)])

    async def patch_rollout_status(
        self, namespace: str, name: str, status: dict[str, Any], resource_version: str | None = None
    ) -> str:
        action = f"write status of ModelRollout {namespace}/{name}"
        await self._enter("patch", "modelrollout/status", namespace, name, action)
        stored = self.rollouts.get((namespace, name))
        if stored is None:
            raise self._refuse(action, 404, f'modelrollouts.modelrollout.io "{name}" not found')
        if resource_version is not None and resource_version != stored["metadata"]["resourceVersion"]:
            raise self._refuse(action, 409, "the object has been modified; please apply your changes")
        stored["status"] = copy.deepcopy(status)
        stored["metadata"]["resourceVersion"] = self._next()
        self.writes["status"] += 1
        self._done("patch", "modelrollout/status")
        return str(stored["metadata"]["resourceVersion"])

    # Workloads -------------------------------------------------------------------------------------------
    async def list_deployments(self, namespace: str, rollout: str) -> list[dict[str, Any]]:
        await self._enter("list", "deployment", namespace, "", f"list Deployments of {namespace}/{rollout}")
        return [
            self._with_status(item)
            for (ns, _), item in sorted(self.deployments.items())
            if ns == namespace and (item["metadata"].get("labels") or {}).get(ROLLOUT_LABEL) == rollout
        ]

    def watch_deployments(self, namespaces: list[str]) -> None:
        """The fake's reads are already in memory: nothing to watch."""

    async def apply(self, obj: dict[str, Any]) -> None:
        kind, meta = obj["kind"], obj["metadata"]
        key = (meta["namespace"], meta["name"])
        await self._enter("apply", kind.lower(), *key, f"apply {kind} {key[0]}/{key[1]}")
        store = self.deployments if kind == "Deployment" else self.services
        stored = copy.deepcopy(obj)
        stored["metadata"]["resourceVersion"] = self._next()
        stored.pop("status", None)
        store[key] = stored
        self.writes[kind.lower()] += 1
        self._done("apply", kind.lower())

    async def workload_owners(self, kind: str, namespace: str, name: str) -> list[str] | None:
        await self._enter("get", kind.lower(), namespace, name, f"read {kind} {namespace}/{name}")
        store = self.deployments if kind == "Deployment" else self.services
        found = store.get((namespace, name))
        if found is None:
            return None
        return [str(owner.get("uid")) for owner in found["metadata"].get("ownerReferences") or []]

    async def scale(self, namespace: str, name: str, replicas: int) -> None:
        action = f"scale Deployment {namespace}/{name}"
        await self._enter("patch", "deployment/scale", namespace, name, action)
        stored = self.deployments.get((namespace, name))
        if stored is None:
            raise self._refuse(action, 404, f'deployments.apps "{name}" not found')
        stored["spec"]["replicas"] = replicas
        stored["metadata"]["resourceVersion"] = self._next()
        self.writes["deployment"] += 1
        self._done("patch", "deployment/scale")

    async def delete_workload(self, namespace: str, name: str) -> None:
        for kind, store in (("deployment", self.deployments), ("service", self.services)):
            await self._enter("delete", kind, namespace, name, f"delete {kind} {namespace}/{name}")
            store.pop((namespace, name), None)
            self.writes[kind] += 1
            self._done("delete", kind)

    async def service_versions(self, namespace: str, rollout: str) -> dict[str, str]:
        await self._enter("list", "service", namespace, "", f"list Services of {namespace}/{rollout}")
        return {
            name: str((item["metadata"].get("labels") or {}).get(VERSION_LABEL, ""))
            for (ns, name), item in sorted(self.services.items())
            if ns == namespace and (item["metadata"].get("labels") or {}).get(ROLLOUT_LABEL) == rollout
        }

    async def list_pods(self, namespace: str, rollout: str) -> list[dict[str, Any]]:
        await self._enter("list", "pod", namespace, "", f"list Pods of {namespace}/{rollout}")
        return []  # the fake runs no pods: Deployments carry their ready count in status

    # VirtualServices and HTTPRoutes ------------------------------------------------------------------------
    async def get_virtual_service(self, namespace: str, name: str) -> dict[str, Any] | None:
        return await self._get_route(self.virtual_services, "VirtualService", namespace, name)

    async def create_virtual_service(self, obj: dict[str, Any]) -> None:
        await self._create_route(
            self.virtual_services, "VirtualService", "virtualservices.networking.istio.io", obj
        )

    async def update_virtual_service(self, live: dict[str, Any], patch: dict[str, Any]) -> None:
        await self._update_route(
            self.virtual_services, "VirtualService", "virtualservices.networking.istio.io", live, patch
        )

    async def get_http_route(self, namespace: str, name: str) -> dict[str, Any] | None:
        return await self._get_route(self.http_routes, "HTTPRoute", namespace, name)

    async def create_http_route(self, obj: dict[str, Any]) -> None:
        await self._create_route(self.http_routes, "HTTPRoute", "httproutes.gateway.networking.k8s.io", obj)

    async def update_http_route(self, live: dict[str, Any], patch: dict[str, Any]) -> None:
        await self._update_route(
            self.http_routes, "HTTPRoute", "httproutes.gateway.networking.k8s.io", live, patch
        )

    async def _get_route(
        self, store: dict[Key, dict[str, Any]], kind: str, namespace: str, name: str
    ) -> dict[str, Any] | None:
        await self._enter("get", kind.lower(), namespace, name, f"read {kind} {namespace}/{name}")
        found = store.get((namespace, name))
        return copy.deepcopy(found) if found is not None else None

    async def _create_route(
        self, store: dict[Key, dict[str, Any]], kind: str, resource: str, obj: dict[str, Any]
    ) -> None:
        meta = obj["metadata"]
        key = (meta["namespace"], meta["name"])
        action = f"create {kind} {key[0]}/{key[1]}"
        await self._enter("create", kind.lower(), *key, action)
        if key in store:
            raise self._refuse(action, 409, f'{resource} "{key[1]}" already exists')
        stored = copy.deepcopy(obj)
        stored["metadata"]["resourceVersion"] = self._next()
        store[key] = stored
        self.writes[kind.lower()] += 1
        self._done("create", kind.lower())

    async def _update_route(
        self,
        store: dict[Key, dict[str, Any]],
        kind: str,
        resource: str,
        live: dict[str, Any],
        patch: dict[str, Any],
    ) -> None:
        meta = live["metadata"]
        key = (meta["namespace"], meta["name"])
        action = f"update {kind} {key[0]}/{key[1]}"
        await self._enter("patch", kind.lower(), *key, action)
        stored = store.get(key)
        if stored is None:
            raise self._refuse(action, 404, f'{resource} "{key[1]}" not found')
        if stored["metadata"]["resourceVersion"] != meta["resourceVersion"]:
            raise self._refuse(action, 409, "the object has been modified; please apply your changes")
        updated = merge_patch(stored, patch)
        updated["metadata"]["resourceVersion"] = self._next()
        store[key] = updated
        self.writes[kind.lower()] += 1
        self._done("patch", kind.lower())

    async def delete_virtual_service(self, live: dict[str, Any]) -> None:
        await self._delete_route(self.virtual_services, "VirtualService", live)

    async def delete_http_route(self, live: dict[str, Any]) -> None:
        await self._delete_route(self.http_routes, "HTTPRoute", live)

    async def _delete_route(self, store: dict[Key, dict[str, Any]], kind: str, live: dict[str, Any]) -> None:
        meta = live["metadata"]
        key = (meta["namespace"], meta["name"])
        action = f"delete {kind} {key[0]}/{key[1]}"
        await self._enter("delete", kind.lower(), *key, action)
        stored = store.get(key)
        if stored is None:
            return
        if stored["metadata"]["resourceVersion"] != meta["resourceVersion"]:
            raise self._refuse(action, 409, "the object has been modified; please apply your changes")
        del store[key]
        self.writes[kind.lower()] += 1
        self._done("delete", kind.lower())

    def edit_virtual_service(
        self, namespace: str, name: str, change: Callable[[dict[str, Any]], None]
    ) -> None:
        """Another writer's change (a person, Argo CD): edits the stored object and moves its resourceVersion."""
        stored = self.virtual_services[(namespace, name)]
        change(stored)
        stored["metadata"]["resourceVersion"] = self._next()

    # Events ------------------------------------------------------------------------------------------------
    async def create_event(self, rollout: dict[str, Any], kind: str, reason: str, message: str) -> None:
        meta = rollout["metadata"]
        await self._enter("create", "event", meta["namespace"], meta["name"], "record event")
        self.events.append({"type": kind, "reason": reason, "message": message, "object": meta["name"]})
        self.writes["event"] += 1
        self._done("create", "event")

    def event_reasons(self) -> list[str]:
        return [e["reason"] for e in self.events]
