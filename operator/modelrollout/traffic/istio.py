"""Pure rendering and reading of the Istio VirtualService routes a ModelRollout owns.

Route layout (one HTTP route per declared slice in slice order, then `modelrollout-default` without match):

    - name: modelrollout-<slice>
      match: [{headers: {<header>: {exact|prefix|regex: ...}}}]    # all of the slice's headers (AND)
      headers: {request: {set: {x-modelrollout-slice: <slice>}}}   # the slice, told to server and telemetry
      route:
        - {destination: {host: <stable svc FQDN>, port: {number: P}}, weight: 100 - w}
        - {destination: {host: <candidate svc FQDN>, port: {number: P}}, weight: w}   # only when w > 0
      mirror: {host: <candidate svc FQDN>, port: {number: P}}                         # shadow only
      mirrorPercentage: {value: <percent>}

Convention: the stable destination is always listed, first; the candidate destination is listed only while
its weight is above 0. A candidate that takes no traffic is therefore never named as a destination (its
Service may not exist yet, and Envoy cannot mistake it for a target), and every route's weights sum to 100.

Before the slice routes, while the planner asks for them, come the override routes: `modelrollout-qa.override`
(spec.strategy.qaOverride) and `modelrollout-preview.override` (the blue-green preview). Each sends requests
carrying its header to the candidate alone and sets the slice header to `_qa` or `_preview`, a label no
declared slice can have, so what they send is never analysed.

Only routes named `modelrollout-*` are owned: `merge_routes` leaves every other route as it is, in place.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

from modelrollout.api.matching import HeaderRoute
from modelrollout.api.spec import ModelRolloutSpec, Slice
from modelrollout.errors import InvalidRoutes
from modelrollout.identity import (
    DEFAULT_SLICE,
    ISTIO_API_VERSION,
    PREVIEW_SLICE,
    QA_SLICE,
    SLICE_HEADER,
    VIRTUAL_SERVICE_KIND,
    arm_route_name,
    override_route_name,
    route_name,
    service_host,
)
from modelrollout.traffic.routes import (
    Destination,
    ObservedRoute,
    Route,
    arm_of,
    checked_mirror,
    checked_weight,
    created_object,
    is_owned,
    merge_owned,
    mirrors_of,
    normalized,
    override_of,
    slice_of,
    weights_of,
)

__all__ = [
    "Destination",
    "ObservedRoute",
    "Route",
    "desired_virtual_service",
    "is_owned",
    "merge_routes",
    "observed_mirror",
    "observed_overrides",
    "observed_weights",
    "owned_routes",
    "read_routes",
    "routes_equal",
    "slice_of",
    "slice_routes",
]


# Rendering -----------------------------------------------------------------------------------------------
def _destination(host: str, port: int) -> dict[str, Any]:
    return {"host": host, "port": {"number": port}}


def _match(slice_: Slice) -> list[dict[str, Any]]:
    # One match block holding every header: Istio ANDs the conditions inside a block and ORs the blocks.
    return [{"headers": {header: value.wire() for header, value in slice_.match.headers.items()}}]


def _override_routes(
    spec: ModelRolloutSpec, candidate_host: str | None, port: int, *, qa: bool, preview: bool
) -> list[Route]:
    """The QA override and preview routes asked for: header -> candidate alone, labelled out of analysis."""
    wanted: list[tuple[str, str, HeaderRoute | None]] = []
    if qa:
        wanted.append(("qa", QA_SLICE, spec.strategy.qa_override))
    if preview:
        blue_green = spec.strategy.blue_green
        wanted.append(("preview", PREVIEW_SLICE, blue_green.preview if blue_green else None))
    routes: list[Route] = []
    for kind, label, header in wanted:
        if header is None:
            raise InvalidRoutes(f"a {kind} route was asked for, but the spec declares no {kind} header")
        if candidate_host is None:
            raise InvalidRoutes(f"a {kind} route needs a candidate version")
        routes.append(
            {
                "name": override_route_name(kind),
                "match": [{"headers": {header.header: header.value.wire()}}],
                "headers": {"request": {"set": {SLICE_HEADER: label}}},
                "route": [{"destination": _destination(candidate_host, port), "weight": 100}],
            }
        )
    return routes


def _arm_route(
    spec: ModelRolloutSpec, slice_name: str, slice_: Slice | None, candidate_host: str | None, port: int
) -> Route:
    """A slice's A/B route: its users whose sticky key falls in the candidate's buckets, to the candidate."""
    experiment = spec.strategy.experiment
    if experiment is None:
        raise InvalidRoutes("A/B routes were asked for, but the spec declares no experiment")
    if candidate_host is None:
        raise InvalidRoutes("A/B routes need a candidate version")
    key = experiment.assignment
    sticky = {key.match_header(): {"regex": key.regex()}}
    blocks = _match(slice_) if slice_ is not None else [{}]
    return {
        "name": arm_route_name(slice_name),
        "match": [{**block, "headers": {**block.get("headers", {}), **sticky}} for block in blocks],
        "headers": {"request": {"set": {SLICE_HEADER: slice_name}}},
        "route": [{"destination": _destination(candidate_host, port), "weight": 100}],
    }


def owned_routes(
    spec: ModelRolloutSpec,
    *,
    name: str,
    namespace: str,
    stable: str,
    candidate: str | None,
    weights: Mapping[str, int],
    mirror_percent: float | None = None,
    qa: bool = False,
    preview: bool = False,
    experiment: bool = False,
) -> list[Route]:
    """The routes the ModelRollout `name` owns, for the given versions, per-slice weights and mirror share.

    `weights` maps slice names (and 'default') to the candidate's percent; a slice that is missing gets 0, so
    a partial map can only err toward stable. Names that are not declared slices are ignored (status may
    still list a slice the spec just removed). `mirror_percent` None or 0 means no mirror. `qa` and `preview`
    put the QA override and the preview route first; `experiment` puts before each slice's route its A/B
    route: the slice's match plus the sticky key's regex (`api/experiment.py`), to the candidate alone.
    Raises InvalidRoutes (a ValueError) for a weight outside 0..100, for weight, mirror or an override route
    with no candidate, or for an override route the spec declares no header for.
    """
    port = spec.service_port()
    stable_host = service_host(name, stable, namespace)
    candidate_host = service_host(name, candidate, namespace) if candidate is not None else None
    mirror = checked_mirror(mirror_percent, candidate_host is not None)

    slices: list[tuple[str, Slice | None]] = [(s.name, s) for s in spec.slices]
    slices.append((DEFAULT_SLICE, None))
    routes = _override_routes(spec, candidate_host, port, qa=qa, preview=preview)
    for slice_name, slice_ in slices:
        weight = checked_weight(slice_name, weights.get(slice_name, 0), candidate_host is not None)
        if experiment:
            routes.append(_arm_route(spec, slice_name, slice_, candidate_host, port))
        route: Route = {"name": route_name(slice_name)}
        if slice_ is not None:
            route["match"] = _match(slice_)
        # The route has already decided the slice: telling the model server (and Istio's telemetry) keeps
        # every component's `slice` label identical to the route that carried the request.
        route["headers"] = {"request": {"set": {SLICE_HEADER: slice_name}}}
        destinations = [{"destination": _destination(stable_host, port), "weight": 100 - weight}]
        if weight and candidate_host is not None:
            destinations.append({"destination": _destination(candidate_host, port), "weight": weight})
        route["route"] = destinations
        if mirror is not None and candidate_host is not None:
            route["mirror"] = _destination(candidate_host, port)
            route["mirrorPercentage"] = {"value": mirror}
        routes.append(route)
    return routes


def desired_virtual_service(
    spec: ModelRolloutSpec, *, name: str, namespace: str, uid: str, routes: list[Route]
) -> dict[str, Any]:
    """The VirtualService to create when none exists: owned by the ModelRollout, holding only our routes."""
    istio = spec.traffic.istio
    if istio is None:
        raise InvalidRoutes("spec.traffic names no Istio VirtualService")
    body: dict[str, Any] = {"hosts": [istio.host]}
    if istio.gateways:
        body["gateways"] = list(istio.gateways)
    body["http"] = copy.deepcopy(routes)
    return created_object(
        ISTIO_API_VERSION, VIRTUAL_SERVICE_KIND, istio.virtual_service, namespace, name, uid, body
    )


# Merging and comparing ------------------------------------------------------------------------------------
def merge_routes(live_http: list[Route], owned: list[Route]) -> list[Route]:
    """The live route list with our routes replaced (`routes.merge_owned`): foreign routes stay in place, ours
    go as one block where the first of them was, so a foreign route placed before ours keeps precedence."""
    return merge_owned(live_http, owned)


def _normalized_route(route: Mapping[str, Any]) -> Any:
    normal = normalized(route) or {}
    destinations = normal.get("route")
    # Istio sends all traffic to a lone destination whether or not its weight is written.
    if isinstance(destinations, list) and len(destinations) == 1 and isinstance(destinations[0], dict):
        destinations[0].setdefault("weight", 100)
    return normal


def routes_equal(live: list[Route] | None, desired: list[Route] | None) -> bool:
    """Whether two HTTP route lists route the same way, ignoring representation the API server may change."""
    live_routes = [_normalized_route(r) for r in live or []]
    desired_routes = [_normalized_route(r) for r in desired or []]
    return live_routes == desired_routes


# Reading back -----------------------------------------------------------------------------------------------
def _port_number(destination: Mapping[str, Any]) -> int | None:
    port = destination.get("port")
    number = port.get("number") if isinstance(port, Mapping) else None
    return int(number) if isinstance(number, int | float) and not isinstance(number, bool) else None


def _weight(entry: Mapping[str, Any], alone: bool) -> int:
    weight = entry.get("weight")
    if isinstance(weight, int | float) and not isinstance(weight, bool):
        return int(weight)
    return 100 if alone else 0  # Istio: a lone destination takes everything; otherwise an unset weight is 0


def _mirror_percent(route: Mapping[str, Any]) -> float:
    if not isinstance(route.get("mirror"), Mapping):
        return 0.0
    percentage = route.get("mirrorPercentage")
    if isinstance(percentage, Mapping):
        value = percentage.get("value")
        return float(value) if isinstance(value, int | float) else 0.0
    legacy = route.get("mirrorPercent", route.get("mirror_percent"))
    if isinstance(legacy, int | float) and not isinstance(legacy, bool):
        return float(legacy)
    return 100.0  # Istio mirrors every request when no percentage is given


def read_routes(http_routes: list[Route] | None) -> list[ObservedRoute]:
    """The owned routes of a live VirtualService, in order, in a typed form (foreign routes are skipped)."""
    observed: list[ObservedRoute] = []
    for route in http_routes or []:
        override, arm = override_of(route), arm_of(route)
        slice_name = override or arm or slice_of(route)
        if slice_name is None:
            continue
        headers: dict[str, dict[str, str]] = {}
        for block in route.get("match") or []:
            if isinstance(block, Mapping):
                headers.update({str(k): dict(v) for k, v in (block.get("headers") or {}).items()})
        entries = [e for e in route.get("route") or [] if isinstance(e, Mapping)]
        destinations = [
            Destination(
                host=str(e.get("destination", {}).get("host", "")),
                port=_port_number(e.get("destination", {})),
                weight=_weight(e, len(entries) == 1),
            )
            for e in entries
        ]
        mirror = route.get("mirror")
        observed.append(
            ObservedRoute(
                slice=slice_name,
                headers=headers,
                destinations=destinations,
                mirror_host=str(mirror.get("host")) if isinstance(mirror, Mapping) else None,
                mirror_port=_port_number(mirror) if isinstance(mirror, Mapping) else None,
                mirror_percent=_mirror_percent(route),
                override=override is not None,
                arm=arm is not None,
            )
        )
    return observed


def observed_weights(http_routes: list[Route] | None, candidate_host: str | None = None) -> dict[str, int]:
    """Per slice, the percent of requests the live owned routes send to the candidate.

    With `candidate_host`, the share going to that host; without it, the share going anywhere but the first
    (stable) destination, per the layout this module renders.
    """
    return weights_of(slice_routes(http_routes), candidate_host)


def observed_mirror(http_routes: list[Route] | None, candidate_host: str | None = None) -> dict[str, float]:
    """Per slice, the percent of requests the live owned routes mirror (to `candidate_host`, when given)."""
    return mirrors_of(slice_routes(http_routes), candidate_host)


def slice_routes(http_routes: list[Route] | None) -> list[ObservedRoute]:
    """The owned routes of the slices (override routes left out), in order."""
    return [route for route in read_routes(http_routes) if not route.override and not route.arm]


def observed_overrides(http_routes: list[Route] | None) -> dict[str, str | None]:
    """Override kind ('qa', 'preview') -> the host its route sends to, for every override route present."""
    return {
        route.slice: route.destinations[0].host if route.destinations else None
        for route in read_routes(http_routes)
        if route.override
    }


# Shadowing ------------------------------------------------------------------------------------------------
_MAP_KEYS = ("headers", "queryParams", "withoutHeaders", "sourceLabels")


def _conditions(block: Mapping[str, Any]) -> set[tuple[str, str]]:
    """One match block's conditions (ANDed), flattened so that a subset matches at least as much."""
    found: set[tuple[str, str]] = set()
    for key, value in block.items():
        if key == "name":
            continue
        if key in _MAP_KEYS and isinstance(value, Mapping):
            found |= {(f"{key}.{k}", json.dumps(v, sort_keys=True)) for k, v in value.items()}
        else:
            found.add((key, json.dumps(value, sort_keys=True)))
    return found


def _blocks(route: Mapping[str, Any]) -> list[set[tuple[str, str]]]:
    blocks = [b for b in route.get("match") or [] if isinstance(b, Mapping)]
    return [_conditions(b) for b in blocks] or [set()]


def shadowing(http_routes: list[Route] | None) -> list[str]:
    """Foreign routes placed before owned ones that catch requests an owned route is meant for (Istio uses
    the first route that matches), as "<foreign> shadows <owned>"; [] when none does."""
    found: list[str] = []
    earlier: list[Route] = []
    for route in http_routes or []:
        if not is_owned(route):
            earlier.append(route)
            continue
        for foreign in earlier:
            if any(f <= o for f in _blocks(foreign) for o in _blocks(route)):
                found.append(f"{foreign.get('name') or '(unnamed)'} shadows {route['name']}")
    return found
