"""Who may write a VirtualService, and what to write into it: the ownership rule as a pure decision.

One VirtualService carries the routes of one rollout. When none exists, the operator creates it and owns it
(ownerReference). When one exists, the operator manages only its `modelrollout-*` routes and marks it with
a claim annotation naming the rollout; a VirtualService claimed by another rollout is refused. A write is
asked for only when the merged routes differ from the live ones (or the claim is missing).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from modelrollout.api.spec import ModelRolloutSpec
from modelrollout.errors import OwnershipRefused
from modelrollout.identity import CLAIM_ANNOTATION
from modelrollout.traffic.istio import Route, desired_virtual_service, merge_routes, routes_equal


@dataclass(frozen=True)
class Create:
    """No VirtualService exists: create this one (owned by the rollout, holding only its routes)."""

    body: dict[str, Any]


@dataclass(frozen=True)
class Patch:
    """Merge-patch the live VirtualService (read at `live`'s resourceVersion) with `patch`."""

    live: dict[str, Any]
    patch: dict[str, Any]


@dataclass(frozen=True)
class Unchanged:
    """The live routes already route as desired and carry our claim: nothing to write."""


@dataclass(frozen=True)
class Refused:
    """Another rollout claims this VirtualService; nothing may be written."""

    error: OwnershipRefused


Decision = Create | Patch | Unchanged | Refused


def claimant(live: dict[str, Any]) -> str | None:
    """The rollout named by a VirtualService's claim annotation, if any."""
    value = ((live.get("metadata") or {}).get("annotations") or {}).get(CLAIM_ANNOTATION)
    return str(value) if value is not None else None


def decide(
    live: dict[str, Any] | None,
    spec: ModelRolloutSpec,
    *,
    rollout: str,
    namespace: str,
    uid: str,
    routes: list[Route],
) -> Decision:
    """What to do with the VirtualService named by spec.traffic.istio for rollout `rollout` and its `routes`."""
    if live is None:
        body = desired_virtual_service(spec, name=rollout, namespace=namespace, uid=uid, routes=routes)
        body["metadata"].setdefault("annotations", {})[CLAIM_ANNOTATION] = rollout
        return Create(body)
    claimed = claimant(live)
    if claimed is not None and claimed != rollout:
        return Refused(
            OwnershipRefused(
                f"VirtualService {namespace}/{spec.traffic.istio.virtual_service}",
                f"its routes are managed by ModelRollout {claimed}; one VirtualService serves one rollout",
            )
        )
    http = list((live.get("spec") or {}).get("http") or [])
    merged = merge_routes(http, routes)
    if routes_equal(http, merged) and claimed == rollout:
        return Unchanged()
    return Patch(live, {"metadata": {"annotations": {CLAIM_ANNOTATION: rollout}}, "spec": {"http": merged}})
