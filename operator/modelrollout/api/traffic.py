"""Where the routes go: the traffic providers a ModelRollout can name (Istio or Gateway API) and the one rule
that tells slices apart differently under each.

Istio takes the first route whose match holds, in the declared slice order. Gateway API ranks every rule's
match by specificity (exact path, longest path prefix, method, then the number of header matches) and keeps
list order only for ties. All our rules share the path `/` and no method, so under Gateway API a slice with
more header matches wins over an earlier one with fewer. `headers_descend` is the rule that rules that out:
with gatewayAPI, slices are listed with more headers first, so both providers put every request in the same
slice.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, model_validator

from modelrollout.api.common import DnsLabel, Rule, SpecModel, enforce, rules_schema


class IstioTraffic(SpecModel):
    """The Istio VirtualService the operator writes routes into."""

    host: str = Field(min_length=1, max_length=253)
    """Host clients call (the VirtualService's hosts entry), e.g. recommender.ml.svc.cluster.local."""
    virtual_service: DnsLabel
    """Name of the VirtualService: created and owned when absent; otherwise only modelrollout-* routes are managed."""
    gateways: list[Annotated[str, Field(min_length=1, max_length=253)]] = Field(
        default_factory=list, max_length=16
    )
    """Gateways the VirtualService binds to (empty: the mesh)."""
    port: int | None = Field(default=None, ge=1, le=65535)
    """Destination port on the per-version Services (default: readiness.port)."""


_GATEWAY_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
_GROUP_PATTERN = r"^$|^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
_KIND_PATTERN = r"^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$"
_HOSTNAME_PATTERN = r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"


class ParentRef(SpecModel):
    """What a created HTTPRoute attaches to: a Gateway, or (Gateway API's mesh mode) the Service clients call."""

    group: str = Field(default="gateway.networking.k8s.io", max_length=253, pattern=_GROUP_PATTERN)
    """API group of the parent (default gateway.networking.k8s.io; "" for a Service)."""
    kind: str = Field(default="Gateway", max_length=63, pattern=_KIND_PATTERN)
    """Kind of the parent (default Gateway; Service in mesh mode)."""
    name: str = Field(min_length=1, max_length=253)
    """Name of the parent."""
    namespace: DnsLabel | None = None
    """Namespace of the parent (default: the rollout's)."""
    section_name: str | None = Field(default=None, max_length=253, pattern=_GATEWAY_NAME_PATTERN)
    """A listener of the Gateway (or a port name of the Service) to attach to."""
    port: int | None = Field(default=None, ge=1, le=65535)
    """Port of the parent to attach to."""


MAX_GATEWAY_API_SLICES = 15
"""An HTTPRoute holds at most 16 rules: the declared slices and `default`."""


class GatewayAPITraffic(SpecModel):
    """The Gateway API HTTPRoute the operator writes rules into."""

    http_route: DnsLabel = Field(alias="httpRoute")
    """Name of the HTTPRoute: created and owned when absent; otherwise only modelrollout-* rules are managed."""
    parent_refs: list[ParentRef] = Field(alias="parentRefs", min_length=1, max_length=32)
    """Parents of a created HTTPRoute: Gateways, or the Service clients call (mesh)."""
    hostnames: list[Annotated[str, Field(max_length=253, pattern=_HOSTNAME_PATTERN)]] = Field(
        default_factory=list, max_length=16
    )
    """Hostnames of a created HTTPRoute (empty: every hostname of its parents)."""
    port: int | None = Field(default=None, ge=1, le=65535)
    """Backend port on the per-version Services (default: readiness.port)."""


_ONE_PROVIDER = Rule(
    cel="has(self.istio) != has(self.gatewayAPI)",
    message="set exactly one traffic provider: istio or gatewayAPI",
    check=lambda t: (t.istio is None) != (t.gateway_api is None),
)


class Traffic(SpecModel):
    """How traffic is shifted: exactly one provider."""

    model_config = ConfigDict(json_schema_extra=rules_schema(_ONE_PROVIDER))

    istio: IstioTraffic | None = None
    """Istio VirtualService routing."""
    gateway_api: GatewayAPITraffic | None = Field(default=None, alias="gatewayAPI")
    """Gateway API HTTPRoute routing (Istio, Envoy Gateway, Cilium, GKE and other implementations)."""

    @model_validator(mode="after")
    def _rules(self) -> Traffic:
        enforce(self, _ONE_PROVIDER)
        return self

    @property
    def provider(self) -> Literal["istio", "gatewayapi"]:
        return "istio" if self.istio is not None else "gatewayapi"

    @property
    def port(self) -> int | None:
        """The destination port the provider names, when set."""
        return (
            self.istio.port if self.istio is not None else self.gateway_api.port if self.gateway_api else None
        )


# Slice precedence under Gateway API --------------------------------------------------------------------------
def headers_descend(slices: Sequence[Any]) -> bool:
    """Whether no slice has more header matches than one declared before it.

    Gateway API takes, among the rules whose match holds, the one with the most header matches, and the first
    in list order among those. With the counts never rising along the list, the first slice whose match
    holds always has the most of them, so both providers put every request in the same slice. Slices that
    could never match the same request may be listed in any order under Istio; sorting them costs nothing.
    """
    counts = [len(s.match.headers) for s in slices]
    return all(earlier >= later for earlier, later in pairwise(counts))
