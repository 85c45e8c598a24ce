"""Pure rendering and reading of the routes a rollout owns, and the rule for who may write them.

`istio` renders, merges, compares and reads back VirtualService HTTP routes; `ownership` decides, from
the live object, whether to create, patch, leave alone or refuse. A new traffic provider (e.g. Gateway
API's HTTPRoute) goes beside `istio` as its own module with the same four jobs.
"""

from modelrollout.traffic import ownership
from modelrollout.traffic.istio import (
    desired_virtual_service,
    merge_routes,
    observed_mirror,
    observed_weights,
    owned_routes,
    read_routes,
    routes_equal,
)

__all__ = [
    "desired_virtual_service",
    "merge_routes",
    "observed_mirror",
    "observed_weights",
    "owned_routes",
    "ownership",
    "read_routes",
    "routes_equal",
]
