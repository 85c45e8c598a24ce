"""No confused deputy, against the real API server: a Service with the name of one the operator would create,
made by someone else, is neither changed nor adopted; the rollout says why in its Reconciled condition."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from kubernetes.aio import client

from modelrollout.controller import Reconciler, Runtime
from modelrollout.controller.metrics import OperatorMetrics
from modelrollout.controller.outbound import Outbound
from modelrollout.identity import workload_name
from modelrollout.kube import connect

from .helpers import condition, create_rollout, rollout_spec

if TYPE_CHECKING:
    from tests.conftest import Cluster, NamespacedApi

pytestmark = pytest.mark.integration
NAME = "deputy"


async def test_a_same_named_service_it_does_not_own_is_refused_and_left_alone(
    cluster: Cluster, kube: NamespacedApi, prometheus_url: str
) -> None:
    ns, name = kube.namespace, workload_name(NAME, "v1")
    theirs = client.V1Service(
        metadata=client.V1ObjectMeta(name=name, labels={"team": "payments"}),
        spec=client.V1ServiceSpec(selector={"app": "payments"}, ports=[client.V1ServicePort(port=80)]),
    )
    await kube.core.create_namespaced_service(ns, theirs)
    await create_rollout(kube.api, ns, NAME, rollout_spec("v1", prometheus_url))

    kube_client = await connect(str(cluster.kubeconfig))
    runtime = Runtime(kube=kube_client, outbound=Outbound(), metrics=OperatorMetrics(), status_refresh=60.0)
    try:
        reconciler = Reconciler(runtime)
        for _ in range(3):
            await reconciler.tick(ns, NAME)
        found = await kube_client.get_rollout(ns, NAME)
    finally:
        await runtime.close()
    assert found is not None
    status: dict[str, Any] = found.get("status") or {}
    reconciled = condition(status, "Reconciled")
    assert reconciled is not None, status
    assert reconciled["status"] == "False", status
    assert f"Service {ns}/{name}" in reconciled["message"]
    assert "not owned by this ModelRollout" in reconciled["message"]

    live = await kube.core.read_namespaced_service(name, ns)
    assert live.metadata.labels == {"team": "payments"}, "the operator relabelled a Service it does not own"
    assert live.spec.selector == {"app": "payments"}, "the operator redirected a Service it does not own"
    assert not live.metadata.owner_references
    deployments = await kube.apps.list_namespaced_deployment(ns)
    assert [d.metadata.name for d in deployments.items] == []
