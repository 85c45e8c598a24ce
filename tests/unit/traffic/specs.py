"""A small factory of valid ModelRollout specs for the traffic tests."""

from __future__ import annotations

from typing import Any

from modelrollout.api.spec import ModelRolloutSpec

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
) -> ModelRolloutSpec:
    istio: dict[str, Any] = {"host": "recommender.ml.svc.cluster.local", "virtualService": "recommender"}
    if port is not None:
        istio["port"] = port
    if gateways is not None:
        istio["gateways"] = gateways
    return ModelRolloutSpec.model_validate(
        {
            "model": {"name": "recommender", "version": "v2", "uri": "s3://models/recommender/v2"},
            "template": {"spec": {"containers": [{"name": "server", "image": "ghcr.io/example/server:1.0"}]}},
            "replicas": 2,
            "readiness": {"port": readiness_port},
            "traffic": {"istio": istio},
            "slices": PLATFORM_SLICES if slices is None else slices,
            "strategy": {"canary": {"steps": [{"weight": 10}, {"weight": 50}]}},
            "analysis": {
                "prometheus": {"url": "http://prometheus:9090"},
                "guards": [{"name": "errors", "metric": "errorRate", "max": 0.05}],
            },
        }
    )
