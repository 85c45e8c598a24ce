"""Deleting a ModelRollout: the running operator lets it go and drops its metric series.

A dashboard or an alert on `modelrollout_phase` must not keep showing a rollout that no longer exists.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from kubernetes.aio import client
from kubernetes.aio.client.exceptions import ApiException

from modelrollout.identity import service_host, workload_name

from .helpers import (
    GROUP,
    ISTIO,
    PLURAL,
    VERSION,
    create_rollout,
    custom,
    eventually,
    patch_rollout,
    phase_is,
    read_rollout,
    read_virtual_service,
    rollout_spec,
    running_operator,
    sample_value,
    tracebacks_from_our_code,
)

if TYPE_CHECKING:
    from tests.conftest import Cluster, NamespacedApi

pytestmark = pytest.mark.integration


async def rollout_exists(api: client.ApiClient, namespace: str, name: str) -> bool:
    try:
        await read_rollout(api, namespace, name)
    except ApiException as error:
        if error.status == 404:
            return False
        raise
    return True


async def test_a_deleted_rollout_leaves_no_metric_series(
    cluster: Cluster, kube: NamespacedApi, prometheus_url: str, tmp_path: Path
) -> None:
    ns, api = kube.namespace, kube.api
    async with running_operator(cluster.kubeconfig, api, ns, tmp_path) as operator:
        await create_rollout(api, ns, "kept", rollout_spec("v1", prometheus_url, virtual_service="kept"))
        await create_rollout(
            api, ns, "deleted", rollout_spec("v1", prometheus_url, virtual_service="deleted")
        )
        for name in ("kept", "deleted"):
            await eventually(api, ns, name, phase_is("Succeeded"), "v1 Succeeded", operator=operator)
        samples = await operator.metrics()
        assert (
            sample_value(samples, "modelrollout_phase", namespace=ns, rollout="deleted", phase="Succeeded")
            == 1
        )

        await custom(api).delete_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "deleted")
        deadline = time.monotonic() + 30
        while await rollout_exists(api, ns, "deleted"):  # the operator releases its finalizer
            assert time.monotonic() < deadline, f"rollout not released:\n{operator.log_tail()}"
            await asyncio.sleep(0.2)

        deadline = time.monotonic() + 10
        while True:
            samples = await operator.metrics()
            left = sorted({name for name, labels, _ in samples if labels.get("rollout") == "deleted"})
            if not left or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.3)
        assert left == [], f"series of the deleted rollout remain: {left}"
        assert (
            sample_value(samples, "modelrollout_phase", namespace=ns, rollout="kept", phase="Succeeded") == 1
        )
        assert operator.running, operator.log_tail()
        assert tracebacks_from_our_code(operator.log_text()) == [], operator.log_tail()


GIT_ROUTE: dict[str, Any] = {
    "name": "primary",
    "route": [{"destination": {"host": "git-held.example.svc.cluster.local", "port": {"number": 8080}}}],
}


def routed_hosts(vs: dict[str, Any] | None) -> set[str]:
    found: set[str] = set()
    for route in ((vs or {}).get("spec") or {}).get("http") or []:
        found |= {d["destination"]["host"] for d in route.get("route") or []}
        if "mirror" in route:
            found.add(route["mirror"]["host"])
    return found


@pytest.mark.parametrize("stage", ["Shadow", "Canary"])
async def test_deleting_mid_rollout_returns_the_traffic_before_anything_is_collected(
    cluster: Cluster, kube: NamespacedApi, prometheus_url: str, tmp_path: Path, stage: str
) -> None:
    """A Git-held VirtualService keeps only its own routes, and at no sampled moment does it route to a
    Service that is gone (on main the owned routes stayed, pointing at collected Services)."""
    ns, api = kube.namespace, kube.api
    await custom(api).create_namespaced_custom_object(
        ISTIO[0],
        ISTIO[1],
        ns,
        ISTIO[2],
        {
            "apiVersion": f"{ISTIO[0]}/{ISTIO[1]}",
            "kind": "VirtualService",
            "metadata": {"name": "git-held"},
            "spec": {"hosts": ["recommender.example.svc.cluster.local"], "http": [GIT_ROUTE]},
        },
    )
    async with running_operator(cluster.kubeconfig, api, ns, tmp_path) as operator:
        await create_rollout(
            api, ns, "doomed", rollout_spec("v1", prometheus_url, virtual_service="git-held")
        )
        await eventually(api, ns, "doomed", phase_is("Succeeded"), "v1 Succeeded", operator=operator)
        await patch_rollout(api, ns, "doomed", {"spec": {"model": {"version": "v2", "uri": "s3://m/v2"}}})
        await eventually(api, ns, "doomed", phase_is("Shadow"), "v2 Shadow", operator=operator)
        if stage == "Canary":
            await patch_rollout(
                api, ns, "doomed", {"metadata": {"annotations": {"modelrollout.io/promote": "step-1"}}}
            )
            await eventually(api, ns, "doomed", phase_is("Canary"), "v2 Canary", operator=operator)
        ours = {service_host("doomed", v, ns): workload_name("doomed", v) for v in ("v1", "v2")}
        assert routed_hosts(await read_virtual_service(api, ns, "git-held")) & set(ours)

        await custom(api).delete_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "doomed")
        broken: list[str] = []
        deadline = time.monotonic() + 60
        while True:
            # Services first: one missing now and still routed by the VirtualService read after is a real
            # fault (Services are only ever deleted here), whatever the delay between the two reads.
            services = {s.metadata.name for s in (await kube.core.list_namespaced_service(ns)).items}
            vs = await read_virtual_service(api, ns, "git-held")
            for host in routed_hosts(vs) & set(ours):
                if ours[host] not in services:
                    broken.append(f"routes to deleted Service {host}")
            gone = not await rollout_exists(api, ns, "doomed")
            if gone and not (services & set(ours.values())):
                break
            assert time.monotonic() < deadline, f"not collected:\n{operator.log_tail()}"
            await asyncio.sleep(0.05)
        assert broken == []
        vs = await read_virtual_service(api, ns, "git-held")
        assert vs is not None
        assert vs["spec"]["http"] == [GIT_ROUTE], "only the VirtualService's own routes are left"
        assert tracebacks_from_our_code(operator.log_text()) == [], operator.log_tail()
