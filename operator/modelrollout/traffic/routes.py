"""What every traffic provider shares: which routes are ours, the checks on weights and mirror shares, the
merge that keeps everyone else's routes in place, the comparison and the typed read-back.

A provider (`istio`, `gatewayapi`) renders one named route (an Istio HTTP route, a Gateway API rule) per slice
and one for `default`, all named `modelrollout-<slice>`; a route without that prefix belongs to someone else.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from modelrollout.errors import InvalidRoutes
from modelrollout.identity import (
    ARM_SUFFIX,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    OVERRIDE_SUFFIX,
    ROLLOUT_LABEL,
    ROUTE_PREFIX,
    owner_reference,
)

Route = dict[str, Any]


def is_owned(route: Mapping[str, Any]) -> bool:
    """Whether a live route is one the operator manages."""
    name = route.get("name")
    return isinstance(name, str) and name.startswith(ROUTE_PREFIX)


def slice_of(route: Mapping[str, Any]) -> str | None:
    """The slice an owned route serves, or None for a route the operator does not own or that is no slice's."""
    if not is_owned(route):
        return None
    name = str(route["name"])[len(ROUTE_PREFIX) :]
    return None if name.endswith((OVERRIDE_SUFFIX, ARM_SUFFIX)) else name


def arm_of(route: Mapping[str, Any]) -> str | None:
    """The slice of an owned A/B candidate-arm route, else None."""
    if not is_owned(route):
        return None
    name = str(route["name"])[len(ROUTE_PREFIX) :]
    return name.removesuffix(ARM_SUFFIX) if name.endswith(ARM_SUFFIX) else None


def override_of(route: Mapping[str, Any]) -> str | None:
    """'qa' or 'preview' for an owned override route, else None."""
    if not is_owned(route):
        return None
    name = str(route["name"])[len(ROUTE_PREFIX) :]
    return name.removesuffix(OVERRIDE_SUFFIX) if name.endswith(OVERRIDE_SUFFIX) else None


def checked_weight(slice_name: str, weight: Any, has_candidate: bool) -> int:
    """The candidate's percent of a slice; InvalidRoutes outside 0..100 or above 0 without a candidate."""
    if isinstance(weight, bool) or not isinstance(weight, int) or not 0 <= weight <= 100:
        raise InvalidRoutes(
            f"canary weight of slice {slice_name!r} must be an integer from 0 to 100, got {weight!r}"
        )
    if weight and not has_candidate:
        raise InvalidRoutes(
            f"slice {slice_name!r} has canary weight {weight} but there is no candidate version"
        )
    return weight


def checked_mirror(mirror_percent: float | None, has_candidate: bool) -> float | None:
    """The mirrored percent, None for no mirror; InvalidRoutes outside (0, 100] or without a candidate."""
    if mirror_percent is None or mirror_percent == 0:
        return None
    if not (isinstance(mirror_percent, int | float) and 0 < mirror_percent <= 100):  # also refuses NaN
        raise InvalidRoutes(f"mirror percent must be in (0, 100], got {mirror_percent!r}")
    if not has_candidate:
        raise InvalidRoutes("cannot mirror without a candidate version")
    return float(mirror_percent)


def created_object(
    api_version: str,
    kind: str,
    object_name: str,
    namespace: str,
    rollout: str,
    uid: str,
    spec: dict[str, Any],
) -> dict[str, Any]:
    """A routing object the operator creates because none existed: labelled and owned by its rollout, so it
    goes with the rollout (either provider)."""
    return {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {
            "name": object_name,
            "namespace": namespace,
            "labels": {MANAGED_BY_LABEL: MANAGED_BY, ROLLOUT_LABEL: rollout},
            "ownerReferences": [owner_reference(rollout, uid)],
        },
        "spec": spec,
    }


def merge_owned(live: list[Route], owned: list[Route]) -> list[Route]:
    """The live route list with our routes replaced.

    Routes not named `modelrollout-*` stay exactly as they are, in their relative order. Ours replace the
    existing owned routes as one block at the position of the first of them (so a foreign route placed before
    ours keeps its place), or are appended when there is none; owned routes of undeclared slices disappear.
    Idempotent: merging the result again with the same routes returns it unchanged.
    """
    merged: list[Route] = []
    placed = False
    for route in live:
        if is_owned(route):
            if not placed:
                merged.extend(copy.deepcopy(owned))
                placed = True
            continue
        merged.append(copy.deepcopy(route))
    if not placed:
        merged.extend(copy.deepcopy(owned))
    return merged


def normalized(value: Any) -> Any:
    """A canonical form for comparing what was written with what the API server returns.

    Absent, null and empty lists/objects are the same thing. Numbers need nothing: the server may return a
    mirror percentage of 100.0 as 100, and Python already compares 100 == 100.0.
    """
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            normal = normalized(item)
            if normal is not None:
                out[key] = normal
        return out or None
    if isinstance(value, list):
        return [normalized(item) for item in value] or None
    return value


@dataclass(frozen=True)
class Destination:
    """One weighted destination of a live route (an Istio host, or a Gateway API backend Service name)."""

    host: str
    port: int | None
    weight: int


@dataclass(frozen=True)
class ObservedRoute:
    """What an owned live route does: which requests it takes, where they go, what is mirrored."""

    slice: str
    """The slice it serves; for an override route, its kind ('qa' or 'preview')."""
    headers: dict[str, dict[str, str]] = field(default_factory=dict)
    destinations: list[Destination] = field(default_factory=list)
    mirror_host: str | None = None
    mirror_port: int | None = None
    mirror_percent: float = 0.0
    override: bool = False
    """An override route (QA or preview), not a slice's."""
    arm: bool = False
    """A slice's A/B route to the candidate arm (`slice` is the slice it belongs to)."""

    def weight_to(self, host: str) -> int:
        """Percent of this route's requests sent to `host` (weights are relative shares)."""
        total = sum(d.weight for d in self.destinations)
        if total <= 0:
            return 0
        return round(100 * sum(d.weight for d in self.destinations if d.host == host) / total)


def weights_of(observed: list[ObservedRoute], candidate_host: str | None = None) -> dict[str, int]:
    """Per slice, the percent of requests sent to `candidate_host`, or, without it, to anything but the first
    (stable) destination, per the layout every provider renders."""
    weights: dict[str, int] = {}
    for route in observed:
        if candidate_host is not None:
            weights[route.slice] = route.weight_to(candidate_host)
            continue
        total = sum(d.weight for d in route.destinations)
        others = sum(d.weight for d in route.destinations[1:])
        weights[route.slice] = round(100 * others / total) if total > 0 else 0
    return weights


def mirrors_of(observed: list[ObservedRoute], candidate_host: str | None = None) -> dict[str, float]:
    """Per slice, the percent of requests mirrored (to `candidate_host`, when given)."""
    return {
        route.slice: route.mirror_percent
        if candidate_host is None or route.mirror_host == candidate_host
        else 0.0
        for route in observed
    }
