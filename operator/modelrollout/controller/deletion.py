"""Deleting a ModelRollout returns its traffic before anything it owns is garbage-collected.

The operator's finalizer holds the object until this has run. Written for a VirtualService; an HTTPRoute
(spec.traffic.gatewayAPI) is handled the same way. For a VirtualService the operator created
(owned by the rollout, so garbage collection would delete it together with the Services it points at, in
no set order): one write puts every slice on stable, then the operator deletes it itself, so no route ever
points at a deleted Service. For a VirtualService someone else created (say, one Argo CD keeps in Git): one
write removes the owned `modelrollout-*` routes and the claim, and the traffic falls to that
VirtualService's own routes. A VirtualService another rollout claims is left alone.
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import ValidationError

from modelrollout.api.spec import ModelRolloutSpec
from modelrollout.api.status import ModelRolloutStatus
from modelrollout.controller.apply import read_routes_object
from modelrollout.controller.reference import RolloutRef
from modelrollout.controller.runtime import Runtime
from modelrollout.errors import KubeError
from modelrollout.identity import CLAIM_ANNOTATION, HTTP_ROUTE_KIND
from modelrollout.kube import KubeApi
from modelrollout.traffic import ownership
from modelrollout.traffic.provider import RouteObject, merge, render_routes, route_object, routes_equal
from modelrollout.traffic.routes import is_owned

log = logging.getLogger("modelrollout.controller")
ATTEMPTS = 3
"""Reads and writes when someone else keeps changing the VirtualService (409 conflicts)."""


def _created_by(live: dict[str, Any], uid: str) -> bool:
    owners = (live.get("metadata") or {}).get("ownerReferences") or []
    return any(o.get("uid") == uid for o in owners)


async def release_traffic(rt: Runtime, body: dict[str, Any]) -> str:
    """Returns the deleted rollout's traffic (see the module); says what it did. Raises KubeError to retry."""
    ref = RolloutRef.from_object(body)
    try:
        spec = ModelRolloutSpec.model_validate(body.get("spec") or {})
    except ValidationError:
        return "spec not readable: nothing was routed by it"
    try:
        status = ModelRolloutStatus.model_validate(body.get("status") or {})
    except ValidationError:
        status = ModelRolloutStatus()
    async with rt.tick_lock(ref.namespace, ref.name):  # a tick in flight finishes first; later ones skip
        return await _release_virtual_service(rt, ref, spec, status)


async def _release_virtual_service(
    rt: Runtime, ref: RolloutRef, spec: ModelRolloutSpec, status: ModelRolloutStatus
) -> str:
    target = route_object(spec)
    for attempt in range(ATTEMPTS):
        live = await read_routes_object(rt.kube, spec, ref.namespace)
        if live is None:
            return f"{target.kind} {target.name} not found"
        if ownership.refusal(live, spec, rollout=ref.name, namespace=ref.namespace) is not None:
            return f"{target.kind} {target.name} belongs to another rollout: left alone"
        try:
            return await _release(rt, ref, spec, status, live)
        except KubeError as error:
            if not error.conflict or attempt == ATTEMPTS - 1:
                raise
    return "unreachable"


async def _release(
    rt: Runtime, ref: RolloutRef, spec: ModelRolloutSpec, status: ModelRolloutStatus, live: dict[str, Any]
) -> str:
    target = route_object(spec)
    current = target.routes(live)
    what = f"{target.kind} {target.name}"
    if not _created_by(live, ref.uid):
        kept = [route for route in current if not is_owned(route)]
        if len(kept) == len(current) and ownership.claimant(live) is None:
            return f"{what} holds no routes of ours"
        patch = {"metadata": {"annotations": {CLAIM_ANNOTATION: None}}, "spec": {target.field: kept}}
        await _update(rt.kube, target, live, patch)
        return f"removed our routes from {what}; its own routes serve"
    if status.stable_version:
        stable = render_routes(
            spec,
            name=ref.name,
            namespace=ref.namespace,
            stable=status.stable_version,
            candidate=None,
            weights={},
            mirror_percent=None,
        )
        merged = merge(current, stable)
        if not routes_equal(spec, current, merged):
            await _update(rt.kube, target, live, {"spec": {target.field: merged}})
            live = await read_routes_object(rt.kube, spec, ref.namespace) or live
    if target.kind == HTTP_ROUTE_KIND:
        await rt.kube.delete_http_route(live)
    else:
        await rt.kube.delete_virtual_service(live)
    return f"every slice on {status.stable_version or 'nothing'}, then deleted {what}"


async def _update(kube: KubeApi, target: RouteObject, live: dict[str, Any], patch: dict[str, Any]) -> None:
    if target.kind == HTTP_ROUTE_KIND:
        await kube.update_http_route(live, patch)
    else:
        await kube.update_virtual_service(live, patch)
