"""Rendered Deployments and Services against the real API server, and one version running on kwok nodes."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pytest
from kubernetes.aio import client

from modelrollout.identity import TEMPLATE_HASH_ANNOTATION
from modelrollout.workloads.render import (
    render_deployment,
    render_service,
    workload_name,
)

from .helpers import ROLLOUT, create, create_rollout, make_spec

if TYPE_CHECKING:
    from tests.conftest import NamespacedApi

pytestmark = pytest.mark.integration

DEPLOYMENTS = "/apis/apps/v1/namespaces/{namespace}/deployments"
SERVICES = "/api/v1/namespaces/{namespace}/services"

RICH_TEMPLATE: dict[str, Any] = {
    "metadata": {
        "labels": {"team": "ranking"},
        "annotations": {
            "sandbox.modelrollout.io/load-delay": "1s",
            "modelrollout.io/environment-fingerprint": "cuda12.4-torch2.5",
        },
    },
    "spec": {
        "nodeSelector": {"type": "kwok"},
        "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
        "securityContext": {"runAsNonRoot": True, "runAsUser": 1000},
        "volumes": [{"name": "cache", "emptyDir": {}}],
        "initContainers": [{"name": "fetch", "image": "ghcr.io/example/fetch:2"}],
        "containers": [
            {"name": "sidecar", "image": "ghcr.io/example/sidecar@sha256:" + "ab" * 32},
            {
                "name": "server",
                "image": "ghcr.io/example/server:1.0",
                "ports": [{"containerPort": 8080, "name": "http"}],
                "env": [
                    {"name": "LOG_LEVEL", "value": "info"},
                    {"name": "ARGS", "value": "--uri=$(MODEL_URI)"},
                ],
                "resources": {"limits": {"cpu": "2", "memory": "4Gi"}},
                "livenessProbe": {"httpGet": {"path": "/healthz", "port": 8080}},
                "volumeMounts": [{"name": "cache", "mountPath": "/cache"}],
            },
        ],
    },
}


@pytest.mark.parametrize("slice_count", [0, 1, 4])
@pytest.mark.parametrize("template", [None, RICH_TEMPLATE], ids=["minimal", "rich"])
@pytest.mark.parametrize("version", ["v2", "2024.11.05-rc.1"])
async def test_rendered_objects_are_accepted(
    kube: NamespacedApi, slice_count: int, template: dict[str, Any] | None, version: str
) -> None:
    spec = make_spec(slice_count, template=template)
    uid = "6a1d3e0e-0000-4000-8000-000000000000"  # dry run: nothing is stored for the garbage collector
    deployment = render_deployment(ROLLOUT, kube.namespace, uid, spec, version, f"s3://m/{version}", 3)
    service = render_service(ROLLOUT, kube.namespace, uid, spec, version)
    accepted = await create(kube.api, DEPLOYMENTS.format(namespace=kube.namespace), deployment, dry_run=True)
    assert accepted["metadata"]["name"] == workload_name(ROLLOUT, version)
    server = next(c for c in accepted["spec"]["template"]["spec"]["containers"] if c["name"] == "server")
    assert server["startupProbe"]["failureThreshold"] == 24  # 2m / 5s
    assert server["readinessProbe"]["httpGet"]["path"] == "/v2/models/recommender/ready"
    accepted = await create(kube.api, SERVICES.format(namespace=kube.namespace), service, dry_run=True)
    assert accepted["spec"]["selector"] == service["spec"]["selector"]
    assert accepted["spec"]["ports"][0]["targetPort"] == 8080


async def wait_ready(apps: client.AppsV1Api, namespace: str, name: str, replicas: int, within: float) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        status = (await apps.read_namespaced_deployment_status(name, namespace)).status
        if status is not None and (status.ready_replicas or 0) == replicas:
            return
        await asyncio.sleep(0.25)
    raise AssertionError(f"deployment {name} did not get {replicas} ready replicas within {within}s")


def ready_time(pod: client.V1Pod) -> datetime:
    assert pod.status is not None
    found = next(c for c in pod.status.conditions or [] if c.type == "Ready")
    assert found.status == "True"
    assert found.last_transition_time is not None
    return found.last_transition_time


def selector_of(service: dict[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(service["spec"]["selector"].items()))


async def test_versions_run_and_become_ready_after_their_model_loads(kube: NamespacedApi) -> None:
    spec = make_spec(4, load_delay="3s", replicas=2)
    uid = await create_rollout(kube.custom, kube.namespace, spec)
    rendered = {
        version: (
            render_deployment(ROLLOUT, kube.namespace, uid, spec, version, f"s3://m/{version}", replicas),
            render_service(ROLLOUT, kube.namespace, uid, spec, version),
        )
        for version, replicas in (("v1", 1), ("v2.1", 2))
    }
    for deployment, service in rendered.values():
        await create(kube.api, SERVICES.format(namespace=kube.namespace), service)
        await create(kube.api, DEPLOYMENTS.format(namespace=kube.namespace), deployment)
    deployment, service = rendered["v2.1"]
    name = deployment["metadata"]["name"]
    await wait_ready(kube.apps, kube.namespace, name, 2, within=60)
    await wait_ready(kube.apps, kube.namespace, rendered["v1"][0]["metadata"]["name"], 1, within=60)

    stored = await kube.apps.read_namespaced_deployment(name, kube.namespace)
    assert stored.metadata is not None
    assert stored.metadata.annotations is not None
    assert (
        stored.metadata.annotations[TEMPLATE_HASH_ANNOTATION]
        == (deployment["metadata"]["annotations"][TEMPLATE_HASH_ANNOTATION])
    )
    # The Service's selector picks exactly this version's pods, not the other version's. (EndpointSlices
    # stay empty in the sandbox: its pod IPs are loopback addresses, which EndpointSlice validation refuses.)
    pods = (await kube.core.list_namespaced_pod(kube.namespace, label_selector=selector_of(service))).items
    assert len(pods) == 2
    all_pods = (await kube.core.list_namespaced_pod(kube.namespace)).items
    assert len(all_pods) == 3
    for pod in pods:
        assert pod.metadata is not None
        assert pod.metadata.labels is not None
        assert pod.metadata.labels["app.kubernetes.io/version"] == "v2.1"
        assert pod.metadata.labels["app.kubernetes.io/managed-by"] == "modelrollout"
        assert pod.spec is not None
        env = {e.name: e.value for e in pod.spec.containers[0].env or []}
        assert env["MODEL_VERSION"] == "v2.1"
        assert env["MODEL_URI"] == "s3://m/v2.1"
        # kwok holds Ready back for the load delay the preserved annotation asks for: a simulated model load.
        assert pod.status is not None
        assert pod.status.start_time is not None
        loading = (ready_time(pod) - pod.status.start_time).total_seconds()
        assert loading >= 2, f"pod {pod.metadata.name} was Ready {loading}s after start; load delay is 3s"
