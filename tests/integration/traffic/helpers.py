"""Helpers for the traffic and workload integration tests: specs, owners and raw JSON requests.

Objects are sent as the plain JSON the renderers produce (not through the client's typed models, which would
silently drop a misspelled field), with fieldValidation=Strict so the API server refuses unknown fields.
"""

from __future__ import annotations

from typing import Any

from kubernetes.aio import client

from modelrollout.api.spec import ModelRolloutSpec
from modelrollout.identity import (
    GATEWAY_GROUP,
    GATEWAY_VERSION,
    GROUP,
    ISTIO_GROUP,
    ISTIO_VERSION,
    LOAD_DELAY_ANNOTATION,
    VERSION,
)
from tests.support import specs

ISTIO = (ISTIO_GROUP, ISTIO_VERSION)
GATEWAY = (GATEWAY_GROUP, GATEWAY_VERSION)
ROLLOUTS = (GROUP, VERSION)
ROLLOUT = "recommender"
HOST = "recommender.example.svc.cluster.local"
READY_PATH = "/v2/models/recommender/ready"

FOUR_SLICES: list[dict[str, Any]] = [
    {"name": "ios-na", "match": {"headers": {"x-platform": {"exact": "ios"}, "x-region": {"exact": "na"}}}},
    {"name": "android", "match": {"headers": {"x-platform": {"exact": "android"}}}},
    {"name": "beta", "match": {"headers": {"x-user": {"prefix": "beta-"}}}},
    {"name": "web", "match": {"headers": {"user-agent": {"regex": "Mozilla/.*"}}}},
]


def make_spec(
    slice_count: int = 4,
    *,
    template: dict[str, Any] | None = None,
    load_delay: str = "2s",
    replicas: int = 2,
    provider: str = "istio",
    strategy: dict[str, Any] | None = None,
) -> ModelRolloutSpec:
    server = specs.container(resources={"requests": {"cpu": "100m", "memory": "128Mi"}})
    default_template = specs.template(server, annotations={LOAD_DELAY_ANNOTATION: load_delay})
    return specs.parsed(
        specs.rollout_spec(
            template=default_template if template is None else template,
            replicas=replicas,
            readiness={"modelReadyPath": READY_PATH, "port": 8080, "loadTimeout": "2m"},
            traffic=specs.gateway_api() if provider == "gatewayapi" else specs.istio(HOST),
            slices=FOUR_SLICES[:slice_count],
            strategy=strategy
            or {"shadow": {"duration": "1m"}, "canary": {"steps": [{"weight": 5}, {"weight": 50}]}},
        )
    )


async def create_rollout(custom: client.CustomObjectsApi, namespace: str, spec: ModelRolloutSpec) -> str:
    """Creates the ModelRollout that generated objects point to, and returns its uid.

    A real owner matters: the garbage collector deletes objects whose owner uid does not exist.
    """
    body = {
        "apiVersion": "/".join(ROLLOUTS),
        "kind": "ModelRollout",
        "metadata": {"name": ROLLOUT},
        "spec": spec.wire(),
    }
    created: Any = await custom.create_namespaced_custom_object(*ROLLOUTS, namespace, "modelrollouts", body)
    return str(created["metadata"]["uid"])


async def request(
    api: client.ApiClient,
    method: str,
    path: str,
    body: dict[str, Any] | None = None,
    query: list[tuple[str, str]] | None = None,
) -> Any:
    """One raw JSON request; returns the decoded response and raises ApiException on errors."""
    params = await api.param_serialize(
        method=method,
        resource_path=path,
        query_params=query or [],
        header_params={"Accept": "application/json", "Content-Type": "application/json"},
        body=body,
        auth_settings=["BearerToken"],
    )
    response = await api.call_api(*params)
    await response.read()  # type: ignore[no-untyped-call]
    return api.response_deserialize(response, {"200": "object", "201": "object"}).data


async def create(api: client.ApiClient, path: str, body: dict[str, Any], dry_run: bool = False) -> Any:
    query = [("fieldValidation", "Strict")]
    if dry_run:
        query.append(("dryRun", "All"))
    return await request(api, "POST", path, body, query)
