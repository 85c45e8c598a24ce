"""The chart's RBAC is enough for everything the operator does, and nothing more.

The operator's real calls (modelrollout.kube.Kube) run impersonating the release's ServiceAccount; calls outside
the role must be refused with 403. The last test runs the real operator (kopf included) with a token of that
ServiceAccount and checks that it rolls a model out without a single permission error.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from kubernetes.aio import client
from kubernetes.aio.client.exceptions import ApiException

from modelrollout.api.spec import ModelRolloutSpec
from modelrollout.api.status import ModelRolloutStatus
from modelrollout.identity import GATEWAY_GROUP, GATEWAY_VERSION, GROUP, HTTP_ROUTES, PLURAL, VERSION
from modelrollout.kube import Kube, KubeError
from modelrollout.kube.informer import DeploymentInformer
from modelrollout.sandbox.processes import free_port, http_ok, start, tail, wait_ready
from modelrollout.traffic.gatewayapi import desired_http_route, owned_rules
from modelrollout.traffic.istio import desired_virtual_service, owned_routes
from modelrollout.workloads.render import render_deployment, render_service
from tests.conftest import Cluster
from tests.support.cluster import Release, impersonating, installed, service_account_kubeconfig
from tests.support.specs import gateway_api
from tests.support.world import spec_dict

pytestmark = pytest.mark.integration
ROLLOUT = "recommender"


@pytest.fixture
def other_namespace(cluster: Cluster) -> Iterator[str]:
    """A second namespace, for the operator's workloads (cluster-wide) or as the unwatched one (namespaced)."""
    name = f"t-{secrets.token_hex(4)}"
    cluster.kubectl("create", "namespace", name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def rollout_manifest(namespace: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ModelRollout",
        "metadata": {"name": ROLLOUT, "namespace": namespace},
        "spec": spec_dict(**spec),
    }


async def create_rollout(api: client.ApiClient, namespace: str, **spec: Any) -> dict[str, Any]:
    custom: Any = client.CustomObjectsApi(api)
    body = rollout_manifest(namespace, **spec)
    created: dict[str, Any] = await custom.create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, body
    )
    return created


async def refused(call: Awaitable[Any]) -> None:
    """The call must fail with 403 Forbidden (KubeError from our wrapper, ApiException from the raw client)."""
    with pytest.raises((KubeError, ApiException)) as caught:
        await call
    error: Any = caught.value
    assert error.status == 403, str(error)


async def operator_actions(kube: Kube, rollout: dict[str, Any]) -> None:
    """Every API call a reconcile tick and kopf make, in the order a rollout makes them."""
    meta = rollout["metadata"]
    namespace, name, uid = meta["namespace"], meta["name"], meta["uid"]
    spec = ModelRolloutSpec.model_validate(rollout["spec"])

    assert (await kube.get_rollout(namespace, name) or {})["metadata"]["uid"] == uid
    assert [r["metadata"]["name"] for r in await kube.list_rollouts(namespace)] == [name]
    # kopf: its finalizer and progress annotations on the resource, its own status field.
    await kube.patch_rollout(
        namespace,
        name,
        {
            "metadata": {
                "finalizers": ["modelrollout.io/operator"],
                "annotations": {"kopf.zalando.org/x": "1"},
            }
        },
    )
    await kube.patch_rollout_status(
        namespace, name, ModelRolloutStatus(phase="Pending", observed_generation=1).wire()
    )

    informer = DeploymentInformer(kube.apps, kube.api, [namespace])  # the operator's LIST, then WATCH
    informer.start()
    try:
        for _ in range(300):
            if namespace in informer.synced:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.5)  # a refused WATCH would drop the cache and LIST again after 1 s
        assert namespace in informer.synced
        assert informer.lists == 1
    finally:
        await informer.stop()
    assert await kube.list_deployments(namespace, name) == []
    await kube.apply(render_service(name, namespace, uid, spec, "v1"))
    await kube.apply(render_deployment(name, namespace, uid, spec, "v1", "s3://models/v1", 2))
    await kube.apply(render_deployment(name, namespace, uid, spec, "v1", "s3://models/v1", 3))
    await kube.scale(namespace, (await kube.list_deployments(namespace, name))[0]["metadata"]["name"], 4)
    [deployment] = await kube.list_deployments(namespace, name)
    assert deployment["spec"]["replicas"] == 4

    routes = owned_routes(
        spec, name=name, namespace=namespace, stable="v1", candidate=None, weights={}, mirror_percent=None
    )
    vs_name = spec.traffic.istio.virtual_service
    assert await kube.get_virtual_service(namespace, vs_name) is None
    await kube.create_virtual_service(
        desired_virtual_service(spec, name=name, namespace=namespace, uid=uid, routes=routes)
    )
    live = await kube.get_virtual_service(namespace, vs_name)
    assert live is not None
    await kube.update_virtual_service(live, {"metadata": {"annotations": {"modelrollout.io/rollout": name}}})
    live = await kube.get_virtual_service(namespace, vs_name)
    assert live is not None
    await kube.delete_virtual_service(live)  # a deleted rollout's own VirtualService
    assert await kube.get_virtual_service(namespace, vs_name) is None

    # The same rollout under Gateway API: its HTTPRoute is read, created and merge-patched the same way.
    gateway_spec = ModelRolloutSpec.model_validate({**spec.wire(), "traffic": gateway_api()})
    rules = owned_rules(
        gateway_spec,
        name=name,
        namespace=namespace,
        stable="v1",
        candidate=None,
        weights={},
        mirror_percent=None,
    )
    assert await kube.get_http_route(namespace, "recommender") is None
    await kube.create_http_route(
        desired_http_route(gateway_spec, name=name, namespace=namespace, uid=uid, rules=rules)
    )
    route = await kube.get_http_route(namespace, "recommender")
    assert route is not None
    await kube.update_http_route(route, {"metadata": {"annotations": {"modelrollout.io/rollout": name}}})

    await kube.create_event(rollout, "Normal", "RbacCheck", "the operator may record events")
    await kube.delete_workload(namespace, deployment["metadata"]["name"])
    assert await kube.list_deployments(namespace, name) == []


async def forbidden_actions(kube: Kube, namespace: str) -> None:
    core: Any = client.CoreV1Api(kube.api)
    await refused(core.read_namespaced_secret("anything", namespace))
    await refused(core.list_namespaced_secret(namespace))
    await refused(core.list_secret_for_all_namespaces())
    await refused(
        core.create_namespaced_secret(namespace, {"metadata": {"name": "x"}, "stringData": {"a": "b"}})
    )
    await refused(kube.custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, ROLLOUT))
    # HTTPRoutes: get, create, patch and delete (a deleted rollout's own), never list.
    await refused(
        kube.custom.list_namespaced_custom_object(GATEWAY_GROUP, GATEWAY_VERSION, namespace, HTTP_ROUTES)
    )
    await refused(
        client.RbacAuthorizationV1Api(kube.api).create_cluster_role(
            client.V1ClusterRole(metadata=client.V1ObjectMeta(name=f"mro-{secrets.token_hex(3)}"), rules=[])
        )
    )
    await refused(
        core.create_namespaced_pod(namespace, {"metadata": {"name": "x"}, "spec": {"containers": []}})
    )
    await refused(core.list_namespaced_config_map(namespace))
    await refused(
        client.ApiextensionsV1Api(kube.api).delete_custom_resource_definition("modelrollouts.modelrollout.io")
    )


@pytest.fixture
async def as_operator(cluster: Cluster) -> AsyncIterator[Callable[[Release], Awaitable[Kube]]]:
    opened: list[Kube] = []

    async def connect(release: Release) -> Kube:
        kube = await impersonating(cluster.kubeconfig, release.user)
        opened.append(kube)
        return kube

    yield connect
    for kube in opened:
        await kube.close()


async def test_cluster_wide_rbac_allows_every_operator_call_and_refuses_the_rest(
    cluster: Cluster,
    api_client: client.ApiClient,
    namespace: str,
    other_namespace: str,
    as_operator: Callable[[Release], Awaitable[Kube]],
    tmp_path: Path,
) -> None:
    rollout = await create_rollout(api_client, other_namespace)
    with installed(cluster.kubeconfig, namespace, {}, tmp_path) as release:
        kube = await as_operator(release)
        await operator_actions(kube, rollout)
        assert ROLLOUT in [r["metadata"]["name"] for r in await kube.list_rollouts(None)]
        crds: Any = await client.ApiextensionsV1Api(kube.api).list_custom_resource_definition()
        assert "modelrollouts.modelrollout.io" in [c.metadata.name for c in crds.items]
        await forbidden_actions(kube, other_namespace)
        await refused(client.CoreV1Api(kube.api).list_namespace())  # not needed cluster-wide
        can_i = cluster.kubectl(
            "auth",
            "can-i",
            "update",
            "modelrollouts.modelrollout.io",
            "--subresource=finalizers",
            f"--as={release.user}",
            f"--namespace={other_namespace}",
            check=False,
        )
        assert can_i.stdout.strip() == "yes", "blockOwnerDeletion needs update on modelrollouts/finalizers"
    await refused(kube.list_deployments(other_namespace, ROLLOUT))  # the binding went with the release


async def test_namespaced_rbac_acts_in_the_watched_namespace_only(
    cluster: Cluster,
    api_client: client.ApiClient,
    namespace: str,
    other_namespace: str,
    as_operator: Callable[[Release], Awaitable[Kube]],
    tmp_path: Path,
) -> None:
    watched = f"t-{secrets.token_hex(4)}"
    cluster.kubectl("create", "namespace", watched)
    try:
        rollout = await create_rollout(api_client, watched)
        elsewhere = await create_rollout(api_client, other_namespace)
        with installed(cluster.kubeconfig, namespace, {"watchNamespaces": [watched]}, tmp_path) as release:
            kube = await as_operator(release)
            await operator_actions(kube, rollout)
            await forbidden_actions(kube, watched)
            # What kopf reads cluster-wide in this mode: namespaces and CRDs, read-only.
            namespaces: Any = await client.CoreV1Api(kube.api).list_namespace()
            assert watched in [n.metadata.name for n in namespaces.items]
            await refused(client.CoreV1Api(kube.api).delete_namespace(other_namespace))
            await client.ApiextensionsV1Api(kube.api).list_custom_resource_definition()
            # Nothing in a namespace it does not watch, and no cluster-wide list of rollouts.
            await refused(kube.list_rollouts(None))
            await refused(kube.get_rollout(other_namespace, ROLLOUT))
            await refused(kube.list_deployments(other_namespace, ROLLOUT))
            spec = ModelRolloutSpec.model_validate(elsewhere["spec"])
            uid = elsewhere["metadata"]["uid"]
            await refused(kube.apply(render_service(ROLLOUT, other_namespace, uid, spec, "v1")))
            await refused(kube.get_virtual_service(other_namespace, "recommender"))
            await refused(kube.get_http_route(other_namespace, "recommender"))
            await refused(kube.patch_rollout_status(other_namespace, ROLLOUT, {"phase": "Pending"}))
            await refused(kube.create_event(elsewhere, "Normal", "RbacCheck", "not here"))
    finally:
        cluster.kubectl("delete", "namespace", watched, "--wait=false", check=False)


# The real operator -------------------------------------------------------------------------------------------
PERMISSION_ERRORS = ("Forbidden", "forbidden", "(HTTP 403)", "Not enough permissions")


async def wait_for(condition: Callable[[], Awaitable[bool]], seconds: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await condition():
            return
        await asyncio.sleep(0.5)
    raise AssertionError(f"{what} within {seconds:.0f}s; operator log:\n{tail(log, 60)}")


async def test_the_real_operator_rolls_out_under_the_charts_service_account(
    cluster: Cluster, api_client: client.ApiClient, namespace: str, tmp_path: Path
) -> None:
    """Namespaced, so this operator never touches rollouts of other tests sharing the sandbox."""
    watched = f"t-{secrets.token_hex(4)}"
    cluster.kubectl("create", "namespace", watched)
    custom: Any = client.CustomObjectsApi(api_client)
    try:
        with installed(cluster.kubeconfig, namespace, {"watchNamespaces": [watched]}, tmp_path) as release:
            token = cluster.kubectl(
                "create", "token", release.service_account, f"--namespace={namespace}", "--duration=1h"
            ).stdout.strip()
            kubeconfig = service_account_kubeconfig(
                cluster.kubeconfig, token, tmp_path / "operator.kubeconfig"
            )
            health, metrics = free_port(), free_port()
            log = tmp_path / "operator.log"
            operator = start(
                "operator",
                [
                    sys.executable,
                    "-m",
                    "modelrollout.cli.main",
                    "operator",
                    f"--kubeconfig={kubeconfig}",
                    f"--namespace={watched}",
                    f"--metrics-address=127.0.0.1:{metrics}",
                    f"--health-address=127.0.0.1:{health}",
                    "--status-refresh=5s",
                    "--verbose",
                ],
                log,
            )
            try:
                wait_ready(operator, http_ok(f"http://127.0.0.1:{health}/healthz"), 60)
                await create_rollout(api_client, watched, replicas=2, readiness={"minReadyReplicas": 1})

                # In the sandbox kwok makes the pods model-ready; elsewhere the placeholder image never loads.
                goal = "Succeeded" if cluster.sandbox is not None else "Warming"

                async def reached() -> bool:
                    body = await custom.get_namespaced_custom_object(GROUP, VERSION, watched, PLURAL, ROLLOUT)
                    return bool((body.get("status") or {}).get("phase") == goal)

                await wait_for(reached, 90, f"the rollout did not reach {goal}", log)
                body = await custom.get_namespaced_custom_object(GROUP, VERSION, watched, PLURAL, ROLLOUT)
                assert "modelrollout.io/operator" in body["metadata"].get("finalizers", [])
                deployments = json.loads(
                    cluster.kubectl("get", "deployments", "-n", watched, "-o", "json").stdout
                )
                assert [d["metadata"]["labels"]["modelrollout.io/version"] for d in deployments["items"]] == [
                    "v1"
                ]
                events = json.loads(cluster.kubectl("get", "events", "-n", watched, "-o", "json").stdout)
                assert any(e["source"].get("component") == "modelrollout" for e in events["items"]), (
                    "the operator's events were recorded"
                )
                async with httpx.AsyncClient() as http:
                    exposed = (await http.get(f"http://127.0.0.1:{metrics}/metrics", timeout=5)).text
                assert (
                    f'modelrollout_phase{{namespace="{watched}",phase="{goal}",rollout="{ROLLOUT}"}} 1.0'
                    in exposed
                )
                if goal == "Succeeded":
                    virtual_service = json.loads(
                        cluster.kubectl(
                            "get", "virtualservice", "recommender", "-n", watched, "-o", "json"
                        ).stdout
                    )
                    assert virtual_service["metadata"]["ownerReferences"][0]["uid"] == body["metadata"]["uid"]

                # Deletion: kopf removes its finalizer (a patch the role must allow), so the object goes.
                await custom.delete_namespaced_custom_object(GROUP, VERSION, watched, PLURAL, ROLLOUT)

                async def deleted() -> bool:
                    try:
                        await custom.get_namespaced_custom_object(GROUP, VERSION, watched, PLURAL, ROLLOUT)
                    except ApiException as error:
                        return bool(error.status == 404)
                    return False

                await wait_for(deleted, 30, "the rollout was not released by its finalizer", log)
            finally:
                operator.stop()
            text = log.read_text(errors="replace")
            problems = [line for line in text.splitlines() if any(p in line for p in PERMISSION_ERRORS)]
            assert not problems, "permission errors in the operator log:\n" + "\n".join(problems[:20])
    finally:
        cluster.kubectl("delete", "namespace", watched, "--wait=false", check=False)
