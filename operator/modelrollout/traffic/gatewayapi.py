"""Pure rendering and reading of the Gateway API HTTPRoute rules a ModelRollout owns.

Rule layout (one rule per declared slice in slice order, then `modelrollout-default`):

    - name: modelrollout-<slice>
      matches:
        - path: {type: PathPrefix, value: /}
          headers:                                          # all of the slice's headers (AND); none: default
            - {type: Exact, name: <header>, value: <value>}              # exact
            - {type: RegularExpression, name: <header>, value: ^<re-escaped prefix>.*}   # prefix
            - {type: RegularExpression, name: <header>, value: ^(?:<regex>)$}            # regex
      filters:
        - type: RequestHeaderModifier                       # the slice, told to server and telemetry
          requestHeaderModifier: {set: [{name: x-modelrollout-slice, value: <slice>}]}
        - type: RequestMirror                               # shadow only
          requestMirror:
            backendRef: {group: "", kind: Service, name: <candidate svc>, port: P}
            percent: <integer percent>                      # or fraction: {numerator, denominator: 1000000}
      backendRefs:
        - {group: "", kind: Service, name: <stable svc>, port: P, weight: 100 - w}
        - {group: "", kind: Service, name: <candidate svc>, port: P, weight: w}   # only when w > 0

How this differs from the Istio layout, and why:
- Gateway API has no header prefix match: a prefix becomes an anchored RegularExpression. A user's regex is
  anchored too (`^(?:...)$`), because whether RegularExpression matches the whole value or a part of it is
  left to each implementation; anchored, both readings accept the same values (RE2 full match, as Istio).
- Rules are not tried in order: the match with the most header matches wins, list order breaks ties. The
  spec requires slices with more headers to come first under gatewayAPI (`api.traffic.headers_descend`), so
  the first slice whose match holds is also the one Gateway API picks, and `default` (no header) comes last.
- Every default the API server fills in (path `/`, header type Exact, backendRef group "" and kind Service)
  is written explicitly, so the stored object reads back equal to what was written.
Only rules named `modelrollout-*` are owned; every other rule stays as it is, in place.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from fractions import Fraction
from typing import Any

from modelrollout.api.matching import StringMatch
from modelrollout.api.spec import ModelRolloutSpec, Slice
from modelrollout.errors import InvalidRoutes
from modelrollout.identity import (
    DEFAULT_SLICE,
    GATEWAY_API_VERSION,
    HTTP_ROUTE_KIND,
    SLICE_HEADER,
    route_name,
    workload_name,
)
from modelrollout.traffic.routes import (
    Destination,
    ObservedRoute,
    Route,
    checked_mirror,
    checked_weight,
    created_object,
    merge_owned,
    mirrors_of,
    normalized,
    slice_of,
    weights_of,
)

MIRROR_DENOMINATOR = 1_000_000
"""A mirror share that is not a whole percent is written as a fraction of this (four decimals of a percent)."""
ROOT_PATH = {"type": "PathPrefix", "value": "/"}


# Rendering -----------------------------------------------------------------------------------------------
def header_match(name: str, match: StringMatch) -> dict[str, str]:
    """One header of a slice as a Gateway API HTTPHeaderMatch (Exact, or an anchored RegularExpression)."""
    if match.exact is not None:
        return {"type": "Exact", "name": name, "value": match.exact}
    if match.prefix is not None:
        return {"type": "RegularExpression", "name": name, "value": f"^{re.escape(match.prefix)}.*"}
    assert match.regex is not None
    return {"type": "RegularExpression", "name": name, "value": f"^(?:{match.regex})$"}


def _matches(slice_: Slice | None) -> list[dict[str, Any]]:
    match: dict[str, Any] = {"path": dict(ROOT_PATH)}
    if slice_ is not None:
        match["headers"] = [header_match(h, m) for h, m in sorted(slice_.match.headers.items())]
    return [match]


def _backend(service: str, port: int) -> dict[str, Any]:
    return {"group": "", "kind": "Service", "name": service, "port": port}


def _mirror_share(percent: float) -> dict[str, Any]:
    if float(percent).is_integer():
        return {"percent": int(percent)}
    numerator = round(Fraction(percent) / 100 * MIRROR_DENOMINATOR)
    return {"fraction": {"numerator": numerator, "denominator": MIRROR_DENOMINATOR}}


def owned_rules(
    spec: ModelRolloutSpec,
    *,
    name: str,
    namespace: str,
    stable: str,
    candidate: str | None,
    weights: Mapping[str, int],
    mirror_percent: float | None = None,
) -> list[Route]:
    """The HTTPRoute rules the ModelRollout `name` owns, for the given versions, per-slice weights and mirror.

    Same contract as `istio.owned_routes`: a slice missing from `weights` gets 0, undeclared names are
    ignored, and InvalidRoutes is raised for a weight outside 0..100 or a weight or mirror with no candidate.
    Backends are the per-version Services by name, in the rollout's namespace.
    """
    del namespace  # backendRefs name Services in the route's own namespace
    port = spec.service_port()
    stable_service = workload_name(name, stable)
    candidate_service = workload_name(name, candidate) if candidate is not None else None
    mirror = checked_mirror(mirror_percent, candidate_service is not None)
    slices: list[tuple[str, Slice | None]] = [(s.name, s) for s in spec.slices]
    slices.append((DEFAULT_SLICE, None))
    rules: list[Route] = []
    for slice_name, slice_ in slices:
        weight = checked_weight(slice_name, weights.get(slice_name, 0), candidate_service is not None)
        filters: list[dict[str, Any]] = [
            {
                "type": "RequestHeaderModifier",
                "requestHeaderModifier": {"set": [{"name": SLICE_HEADER, "value": slice_name}]},
            }
        ]
        if mirror is not None and candidate_service is not None:
            mirror_filter = {"backendRef": _backend(candidate_service, port), **_mirror_share(mirror)}
            filters.append({"type": "RequestMirror", "requestMirror": mirror_filter})
        backends = [{**_backend(stable_service, port), "weight": 100 - weight}]
        if weight and candidate_service is not None:
            backends.append({**_backend(candidate_service, port), "weight": weight})
        rules.append(
            {
                "name": route_name(slice_name),
                "matches": _matches(slice_),
                "filters": filters,
                "backendRefs": backends,
            }
        )
    return rules


def desired_http_route(
    spec: ModelRolloutSpec, *, name: str, namespace: str, uid: str, rules: list[Route]
) -> dict[str, Any]:
    """The HTTPRoute to create when none exists: owned by the ModelRollout, holding only our rules."""
    gateway = spec.traffic.gateway_api
    if gateway is None:
        raise InvalidRoutes("spec.traffic names no Gateway API HTTPRoute")
    body: dict[str, Any] = {"parentRefs": [ref.wire() for ref in gateway.parent_refs]}
    if gateway.hostnames:
        body["hostnames"] = list(gateway.hostnames)
    body["rules"] = copy.deepcopy(rules)
    return created_object(
        GATEWAY_API_VERSION, HTTP_ROUTE_KIND, gateway.http_route, namespace, name, uid, body
    )


# Merging and comparing ------------------------------------------------------------------------------------
def merge_rules(live_rules: list[Route], owned: list[Route]) -> list[Route]:
    """The live rule list with our rules replaced (`routes.merge_owned`). Other rules keep their place; the
    place matters only between rules of equal precedence (Gateway API ranks by match, not by position)."""
    return merge_owned(live_rules, owned)


def _with_defaults(rule: Mapping[str, Any]) -> dict[str, Any]:
    """A rule with every default the HTTPRoute schema applies filled in, as the API server stores it."""
    out = copy.deepcopy(dict(rule))
    matches = out.get("matches") or [{}]
    for match in matches:
        match.setdefault("path", dict(ROOT_PATH))
        match["path"].setdefault("type", "PathPrefix")
        match["path"].setdefault("value", "/")
        for condition in (match.get("headers") or []) + (match.get("queryParams") or []):
            condition.setdefault("type", "Exact")
    out["matches"] = matches
    for backend in out.get("backendRefs") or []:
        backend.setdefault("group", "")
        backend.setdefault("kind", "Service")
        backend.setdefault("weight", 1)
    for entry in out.get("filters") or []:
        mirror = entry.get("requestMirror")
        if isinstance(mirror, dict):
            mirror.setdefault("backendRef", {}).setdefault("group", "")
            mirror["backendRef"].setdefault("kind", "Service")
            if isinstance(mirror.get("fraction"), dict):
                mirror["fraction"].setdefault("denominator", 100)
    return out


def rules_equal(live: list[Route] | None, desired: list[Route] | None) -> bool:
    """Whether two rule lists route the same way, ignoring the defaults the API server fills in."""
    live_rules = [normalized(_with_defaults(r)) for r in live or []]
    desired_rules = [normalized(_with_defaults(r)) for r in desired or []]
    return live_rules == desired_rules


# Reading back -----------------------------------------------------------------------------------------------
def _number(value: Any, default: int) -> int:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else default


def mirror_percent(mirror: Mapping[str, Any]) -> float:
    """The percent of requests a RequestMirror filter copies: `percent`, `fraction`, or all when neither."""
    if "percent" in mirror:
        return float(_number(mirror["percent"], 100))
    fraction = mirror.get("fraction")
    if isinstance(fraction, Mapping):
        denominator = _number(fraction.get("denominator"), 100)
        return 100.0 * _number(fraction.get("numerator"), 0) / denominator if denominator > 0 else 0.0
    return 100.0


def _headers(rule: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    found: dict[str, dict[str, str]] = {}
    for match in rule.get("matches") or []:
        for condition in (match.get("headers") or []) if isinstance(match, Mapping) else []:
            kind = "regex" if condition.get("type") == "RegularExpression" else "exact"
            found[str(condition.get("name", "")).lower()] = {kind: str(condition.get("value", ""))}
    return found


def read_rules(rules: list[Route] | None) -> list[ObservedRoute]:
    """The owned rules of a live HTTPRoute, in order, in a typed form (foreign rules are skipped)."""
    observed: list[ObservedRoute] = []
    for rule in rules or []:
        slice_name = slice_of(rule)
        if slice_name is None:
            continue
        destinations = [
            Destination(
                host=str(b.get("name", "")),
                port=_number(b.get("port"), 0) or None,
                weight=_number(b.get("weight"), 1),
            )
            for b in rule.get("backendRefs") or []
            if isinstance(b, Mapping)
        ]
        mirrors = [
            f["requestMirror"]
            for f in rule.get("filters") or []
            if isinstance(f, Mapping)
            and f.get("type") == "RequestMirror"
            and isinstance(f.get("requestMirror"), Mapping)
        ]
        backend = (mirrors[0].get("backendRef") or {}) if mirrors else {}
        observed.append(
            ObservedRoute(
                slice=slice_name,
                headers=_headers(rule),
                destinations=destinations,
                mirror_host=str(backend["name"]) if "name" in backend else None,
                mirror_port=_number(backend.get("port"), 0) or None,
                mirror_percent=mirror_percent(mirrors[0]) if mirrors else 0.0,
            )
        )
    return observed


def observed_weights(rules: list[Route] | None, candidate_service: str | None = None) -> dict[str, int]:
    """Per slice, the percent of requests the live owned rules send to the candidate (its Service name when
    given; otherwise anything but the first, stable, backend)."""
    return weights_of(read_rules(rules), candidate_service)


def observed_mirror(rules: list[Route] | None, candidate_service: str | None = None) -> dict[str, float]:
    """Per slice, the percent of requests the live owned rules mirror (to `candidate_service`, when given)."""
    return mirrors_of(read_rules(rules), candidate_service)
