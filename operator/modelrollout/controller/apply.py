"""Carrying out a plan's actions: the routes first (a rollback is one VirtualService or HTTPRoute write), then
workloads."""

from __future__ import annotations

import logging
import time
from typing import Any

from modelrollout.api.spec import ModelRolloutSpec
from modelrollout.api.status import ModelRolloutStatus
from modelrollout.controller.reference import RolloutRef
from modelrollout.controller.runtime import Runtime
from modelrollout.errors import InvalidRoutes, InvalidTemplate, KubeError, OwnershipRefused
from modelrollout.identity import HTTP_ROUTE_KIND, KIND, TEMPLATE_HASH_ANNOTATION
from modelrollout.kube import KubeApi
from modelrollout.plan import Action, EnsureWorkload, RemoveWorkload, SetRoutes
from modelrollout.plan.conditions import routing_of
from modelrollout.traffic import ownership
from modelrollout.traffic.provider import RouteObject, render_routes, route_object, routes_equal
from modelrollout.traffic.routes import is_owned
from modelrollout.workloads.render import render_deployment, render_service

log = logging.getLogger("modelrollout.controller")
WRITE_ATTEMPTS = 3
"""Reads and writes of the routes' object per tick when someone else keeps changing it (409 conflicts)."""


async def apply_actions(
    rt: Runtime,
    ref: RolloutRef,
    spec: ModelRolloutSpec,
    actions: list[Action],
    deployments: dict[str, dict[str, Any]],
    routes_object: dict[str, Any] | None = None,
) -> tuple[bool, float | None, str | None]:
    """Routes first (starting from `routes_object` as read this tick), then workloads.
    Returns (routes written, when, what failed or None)."""
    written, at = False, None
    try:
        for action in actions:
            if isinstance(action, SetRoutes):
                written = await write_routes(rt, ref, spec, action, routes_object)
                at = time.monotonic() if written else at
        for action in actions:
            if isinstance(action, EnsureWorkload):
                await ensure_workload(rt, ref, spec, action, deployments.get(action.version))
            elif isinstance(action, RemoveWorkload) and action.version in deployments:
                name = deployments[action.version]["metadata"]["name"]
                await rt.kube.delete_workload(ref.namespace, name)
    except (KubeError, OwnershipRefused) as error:
        return written, at, str(error)
    except InvalidTemplate as error:
        return written, at, f"cannot render workloads: {error}"
    except InvalidRoutes as error:
        return written, at, f"cannot render routes: {error}"
    return written, at, None


def drifted_routes(
    spec: ModelRolloutSpec, live: dict[str, Any] | None, desired: list[dict[str, Any]]
) -> list[str]:
    """Names of the owned routes whose live form differs from `desired` (changed, missing or added)."""
    current = route_object(spec).routes(live) if live is not None else []
    found = {str(r.get("name")): r for r in current if is_owned(r)}
    wanted = {str(r["name"]): r for r in desired}
    return sorted(
        name
        for name in set(found) | set(wanted)
        if name not in found or name not in wanted or not routes_equal(spec, [found[name]], [wanted[name]])
    )


async def write_routes(
    rt: Runtime,
    ref: RolloutRef,
    spec: ModelRolloutSpec,
    action: SetRoutes,
    read: dict[str, Any] | None = None,
) -> bool:
    """Makes the live VirtualService or HTTPRoute route as `action` says; True when something was written.
    `read` is the copy read earlier this tick (None: read it now); a conflict re-reads."""
    routes = render_routes(
        spec,
        name=ref.name,
        namespace=ref.namespace,
        stable=action.stable,
        candidate=action.candidate,
        weights=action.weights,
        mirror_percent=action.mirror_percent,
        qa=action.qa,
        preview=action.preview,
        experiment=action.experiment,
    )
    target = route_object(spec)
    for attempt in range(WRITE_ATTEMPTS):
        live = read if attempt == 0 and read is not None else await _read(rt.kube, target, ref.namespace)
        decision = ownership.decide(
            live, spec, rollout=ref.name, namespace=ref.namespace, uid=ref.uid, routes=routes
        )
        try:
            if isinstance(decision, ownership.Create):
                await _create(rt.kube, target, decision.body)
            elif isinstance(decision, ownership.Patch):
                await _update(rt.kube, target, decision.live, decision.patch)
            elif isinstance(decision, ownership.Refused):
                raise decision.error
            else:
                return False
            return True
        except KubeError as error:
            if error.conflict and attempt < WRITE_ATTEMPTS - 1:
                continue  # someone changed it since we read it: decide again on the fresh copy
            raise
    return False


async def read_routes_object(kube: KubeApi, spec: ModelRolloutSpec, namespace: str) -> dict[str, Any] | None:
    """The live VirtualService or HTTPRoute that carries the rollout's routes (None: there is none yet)."""
    return await _read(kube, route_object(spec), namespace)


# The provider's kind decides which calls carry the routes.
async def _read(kube: KubeApi, target: RouteObject, namespace: str) -> dict[str, Any] | None:
    if target.kind == HTTP_ROUTE_KIND:
        return await kube.get_http_route(namespace, target.name)
    return await kube.get_virtual_service(namespace, target.name)


async def _create(kube: KubeApi, target: RouteObject, body: dict[str, Any]) -> None:
    if target.kind == HTTP_ROUTE_KIND:
        await kube.create_http_route(body)
    else:
        await kube.create_virtual_service(body)


async def _update(kube: KubeApi, target: RouteObject, live: dict[str, Any], patch: dict[str, Any]) -> None:
    if target.kind == HTTP_ROUTE_KIND:
        await kube.update_http_route(live, patch)
    else:
        await kube.update_virtual_service(live, patch)


async def ensure_workload(
    rt: Runtime, ref: RolloutRef, spec: ModelRolloutSpec, action: EnsureWorkload, live: dict[str, Any] | None
) -> None:
    """Creates or updates one version's Deployment and Service; stable and previous keep their template."""
    if live is not None and not action.render:
        if int((live.get("spec") or {}).get("replicas") or 0) != action.replicas:
            await rt.kube.scale(ref.namespace, live["metadata"]["name"], action.replicas)
        return
    desired = render_deployment(
        ref.name, ref.namespace, ref.uid, spec, action.version, action.uri, action.replicas
    )
    if live is not None:
        same_template = (live["metadata"].get("annotations") or {}).get(TEMPLATE_HASH_ANNOTATION) == desired[
            "metadata"
        ]["annotations"][TEMPLATE_HASH_ANNOTATION]
        if same_template and int((live.get("spec") or {}).get("replicas") or 0) == action.replicas:
            return
    elif not action.render:
        log.warning(
            "%s: Deployment of %s is missing; recreating it from the current template", ref, action.version
        )
    service = render_service(ref.name, ref.namespace, ref.uid, spec, action.version)
    for obj in (service, desired):
        await _refuse_unless_owned(rt, ref, obj)
    await rt.kube.apply(service)
    await rt.kube.apply(desired)


async def report_drift(
    rt: Runtime,
    ref: RolloutRef,
    spec: ModelRolloutSpec,
    before: ModelRolloutStatus,
    after: ModelRolloutStatus,
    actions: list[Action],
    live: dict[str, Any] | None,
) -> list[str]:
    """Owned routes someone else changed since our last applied write: a Warning Event and a counter per
    route (this tick's route write restores them). Only when no decision moved the routes this tick and the
    last tick's writes landed (Reconciled=True), so our own pending writes are never taken for drift."""
    routes = next((a for a in actions if isinstance(a, SetRoutes)), None)
    last = next((c for c in before.conditions if c.type == "Reconciled"), None)
    if routes is None or live is None or last is None or last.status != "True":
        return []
    if routing_of(before) != routing_of(after):
        return []
    try:
        desired = render_routes(
            spec,
            name=ref.name,
            namespace=ref.namespace,
            stable=routes.stable,
            candidate=routes.candidate,
            weights=routes.weights,
            mirror_percent=routes.mirror_percent,
        )
    except InvalidRoutes:
        return []
    drifted = drifted_routes(spec, live, desired)
    if drifted:
        for name in drifted:
            rt.metrics.route_drift.labels(ref.namespace, ref.name, name).inc()
        message = f"owned routes changed outside the operator, restored: {', '.join(drifted)}"
        log.warning("%s: %s", ref, message)
        try:
            await rt.kube.create_event(ref.event_target(), "Warning", "RoutesDrifted", message)
        except KubeError as error:  # the restore matters more than its Event
            log.warning("%s: cannot record the drift Event: %s", ref, error)
    return drifted


async def _refuse_unless_owned(rt: Runtime, ref: RolloutRef, obj: dict[str, Any]) -> None:
    """No confused deputy: a same-named object this rollout did not create is never taken over."""
    kind, name = obj["kind"], obj["metadata"]["name"]
    owners = await rt.kube.workload_owners(kind, ref.namespace, name)
    if owners is not None and ref.uid not in owners:
        raise OwnershipRefused(
            f"{kind} {ref.namespace}/{name}",
            f"it exists and is not owned by this {KIND} (no ownerReference to uid {ref.uid}); "
            "the operator changes only objects it created: delete or rename it",
        )
