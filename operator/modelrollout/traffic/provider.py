"""The one place that picks a traffic provider: from `spec.traffic`, which object holds a rollout's routes and
which module renders, merges and compares them. Everything above (ownership, the controller) asks here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from modelrollout.api.spec import ModelRolloutSpec
from modelrollout.errors import InvalidRoutes
from modelrollout.identity import HTTP_ROUTE_KIND, VIRTUAL_SERVICE_KIND
from modelrollout.traffic import gatewayapi, istio
from modelrollout.traffic.routes import Route, merge_owned


@dataclass(frozen=True)
class RouteObject:
    """The object that carries a rollout's routes: its kind, its name, and the spec field listing the routes."""

    kind: str
    name: str
    field: str

    def routes(self, live: Mapping[str, Any]) -> list[Route]:
        """The route list of a live object of this kind."""
        return list((live.get("spec") or {}).get(self.field) or [])


def route_object(spec: ModelRolloutSpec) -> RouteObject:
    gateway = spec.traffic.gateway_api
    if gateway is not None:
        return RouteObject(HTTP_ROUTE_KIND, gateway.http_route, "rules")
    assert spec.traffic.istio is not None  # the spec's rule: exactly one provider
    return RouteObject(VIRTUAL_SERVICE_KIND, spec.traffic.istio.virtual_service, "http")


def render_routes(
    spec: ModelRolloutSpec,
    *,
    name: str,
    namespace: str,
    stable: str,
    candidate: str | None,
    weights: Mapping[str, int],
    mirror_percent: float | None,
    qa: bool = False,
    preview: bool = False,
    experiment: bool = False,
) -> list[Route]:
    """The routes rollout `name` owns, in its provider's form (raises InvalidRoutes like the providers).

    The header routes to the candidate (QA override, preview, A/B arms) are Istio's only; the spec refuses them with
    the Gateway API provider."""
    if spec.traffic.gateway_api is not None:
        if qa or preview or experiment:
            raise InvalidRoutes("the Gateway API provider renders no QA override, preview or A/B route")
        return gatewayapi.owned_rules(
            spec,
            name=name,
            namespace=namespace,
            stable=stable,
            candidate=candidate,
            weights=weights,
            mirror_percent=mirror_percent,
        )
    return istio.owned_routes(
        spec,
        name=name,
        namespace=namespace,
        stable=stable,
        candidate=candidate,
        weights=weights,
        mirror_percent=mirror_percent,
        qa=qa,
        preview=preview,
        experiment=experiment,
    )


def desired_object(
    spec: ModelRolloutSpec, *, name: str, namespace: str, uid: str, routes: list[Route]
) -> dict[str, Any]:
    """The object to create when none exists, owned by the rollout and holding only its routes."""
    if spec.traffic.gateway_api is not None:
        return gatewayapi.desired_http_route(spec, name=name, namespace=namespace, uid=uid, rules=routes)
    return istio.desired_virtual_service(spec, name=name, namespace=namespace, uid=uid, routes=routes)


def merge(live: list[Route], owned: list[Route]) -> list[Route]:
    """Our routes in place of the owned ones; every other route as it was (the same for both providers)."""
    return merge_owned(live, owned)


def routes_equal(spec: ModelRolloutSpec, live: list[Route] | None, desired: list[Route] | None) -> bool:
    """Whether two route lists route the same way, by the rules of the spec's provider."""
    if spec.traffic.gateway_api is not None:
        return gatewayapi.rules_equal(live, desired)
    return istio.routes_equal(live, desired)
