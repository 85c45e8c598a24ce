"""What a simulated data plane decides for one request, whichever routing API it follows (an Istio
VirtualService in `trafficgen`, a Gateway API HTTPRoute in `httproute`)."""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class Decision:
    """Where one request goes."""

    route: str | None
    """Name of the route (or rule) taken ('#<index>' when unnamed); None when none matched."""
    destination: str | None
    """Host (or backend Service) of the chosen destination; None when there is none (e.g. a redirect)."""
    mirrors: tuple[str, ...] = ()
    """Hosts that get a mirrored copy."""
    headers: Mapping[str, str] = field(default_factory=dict)
    """Request headers the route sets or adds, as the proxy adds them upstream."""
    removed: frozenset[str] = frozenset()
    """Request headers the route removes (lowercase)."""
    mirror_headers: tuple[Mapping[str, str], ...] = ()
    """Per mirror, the whole header set its copy carries, when it differs from the served request's (Gateway
    API applies filters in order); empty: copies carry the served request's headers."""


class Router(Protocol):
    """A routing table built from one live routing object."""

    @property
    def hosts(self) -> frozenset[str]:
        """Every destination and mirror host it names."""
        ...

    def route(
        self, headers: Mapping[str, str], rng: random.Random, *, method: str = "POST", path: str = "/predict"
    ) -> Decision: ...
