"""A small factory of valid ModelRollout specs for the traffic tests."""

from __future__ import annotations

from typing import Any

from modelrollout.api.spec import ModelRolloutSpec
from tests.support import specs

NAMESPACE = "ml"
ROLLOUT = "recommender"

PLATFORM_SLICES: list[dict[str, Any]] = [
    {"name": "ios-na", "match": {"headers": {"x-platform": {"exact": "ios"}, "x-region": {"exact": "na"}}}},
    {"name": "android", "match": {"headers": {"x-platform": {"exact": "android"}}}},
    {"name": "beta", "match": {"headers": {"x-user": {"prefix": "beta-"}}}},
    {"name": "web", "match": {"headers": {"user-agent": {"regex": "Mozilla/.*"}}}},
]


def make_spec(
    slices: list[dict[str, Any]] | None = None,
    *,
    port: int | None = None,
    readiness_port: int = 8080,
    gateways: list[str] | None = None,
    provider: str = "istio",
    strategy: dict[str, Any] | None = None,
) -> ModelRolloutSpec:
    extra: dict[str, Any] = {}
    if port is not None:
        extra["port"] = port
    if gateways is not None:
        extra["gateways"] = gateways
    traffic = specs.gateway_api(**extra) if provider == "gatewayapi" else specs.istio(**extra)
    return specs.parsed(
        specs.rollout_spec(
            template=specs.template(specs.container("ghcr.io/example/server:1.0", port=None)),
            readiness={"port": readiness_port},
            traffic=traffic,
            slices=PLATFORM_SLICES if slices is None else slices,
            analysis=specs.analysis_with(url="http://prometheus:9090"),
            strategy=strategy,
        )
    )
