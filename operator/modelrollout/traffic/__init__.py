"""Pure rendering and reading of the routes a rollout owns, and the rule for who may write them.

Two providers, each with the same four jobs (render the owned routes, merge them into a live object, compare,
read back): `istio` (VirtualService HTTP routes) and `gatewayapi` (HTTPRoute rules). `routes` holds what they
share, `provider` picks one from `spec.traffic`, and `ownership` decides, from the live object, whether to
create, patch, leave alone or refuse.
"""

from modelrollout.traffic import gatewayapi, istio, ownership, provider
from modelrollout.traffic.istio import (
    desired_virtual_service,
    merge_routes,
    observed_mirror,
    observed_weights,
    owned_routes,
    read_routes,
    routes_equal,
)
from modelrollout.traffic.provider import RouteObject, render_routes, route_object

__all__ = [
    "RouteObject",
    "desired_virtual_service",
    "gatewayapi",
    "istio",
    "merge_routes",
    "observed_mirror",
    "observed_weights",
    "owned_routes",
    "ownership",
    "provider",
    "read_routes",
    "render_routes",
    "route_object",
    "routes_equal",
]
