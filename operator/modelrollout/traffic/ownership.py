"""Who may write a VirtualService or HTTPRoute, and what to write into it: the ownership rule as a pure
decision, the same for both providers.

One VirtualService (or HTTPRoute) carries the routes of one rollout. When none exists, the operator creates it
and owns it (ownerReference). When one exists, the operator manages only its `modelrollout-*` routes (HTTP
routes, or HTTPRoute rules) and marks it with a claim annotation naming the rollout; an object claimed by
another rollout is refused. A write is asked for only when the merged routes differ from the live ones (or
the claim is missing).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from modelrollout.api.spec import ModelRolloutSpec
from modelrollout.errors import OwnershipRefused
from modelrollout.identity import CLAIM_ANNOTATION
from modelrollout.traffic.provider import desired_object, merge, route_object, routes_equal
from modelrollout.traffic.routes import Route


@dataclass(frozen=True)
class Create:
    """No object exists: create this one (owned by the rollout, holding only its routes)."""

    body: dict[str, Any]


@dataclass(frozen=True)
class Patch:
    """Merge-patch the live object (read at `live`'s resourceVersion) with `patch`."""

    live: dict[str, Any]
    patch: dict[str, Any]


@dataclass(frozen=True)
class Unchanged:
    """The live routes already route as desired and carry our claim: nothing to write."""


@dataclass(frozen=True)
class Refused:
    """Another rollout claims this object; nothing may be written."""

    error: OwnershipRefused


Decision = Create | Patch | Unchanged | Refused


def claimant(live: dict[str, Any]) -> str | None:
    """The rollout named by an object's claim annotation, if any."""
    value = ((live.get("metadata") or {}).get("annotations") or {}).get(CLAIM_ANNOTATION)
    return str(value) if value is not None else None


def refusal(
    live: dict[str, Any] | None, spec: ModelRolloutSpec, *, rollout: str, namespace: str
) -> OwnershipRefused | None:
    """Why `rollout` may not write the live VirtualService or HTTPRoute (another rollout claims it), or None."""
    if live is None:
        return None
    claimed = claimant(live)
    if claimed is None or claimed == rollout:
        return None
    target = route_object(spec)
    return OwnershipRefused(
        f"{target.kind} {namespace}/{target.name}",
        f"its routes are managed by ModelRollout {claimed}; one {target.kind} serves one rollout",
    )


def decide(
    live: dict[str, Any] | None,
    spec: ModelRolloutSpec,
    *,
    rollout: str,
    namespace: str,
    uid: str,
    routes: list[Route],
) -> Decision:
    """What to do with the object spec.traffic names (a VirtualService or an HTTPRoute) for rollout `rollout`
    and its `routes`."""
    target = route_object(spec)
    if live is None:
        body = desired_object(spec, name=rollout, namespace=namespace, uid=uid, routes=routes)
        body["metadata"].setdefault("annotations", {})[CLAIM_ANNOTATION] = rollout
        return Create(body)
    refused = refusal(live, spec, rollout=rollout, namespace=namespace)
    if refused is not None:
        return Refused(refused)
    claimed = claimant(live)
    current = target.routes(live)
    merged = merge(current, routes)
    if routes_equal(spec, current, merged) and claimed == rollout:
        return Unchanged()
    return Patch(
        live, {"metadata": {"annotations": {CLAIM_ANNOTATION: rollout}}, "spec": {target.field: merged}}
    )
