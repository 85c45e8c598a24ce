"""Istio's own validation (istioctl built from istio.io/istio) of what the operator writes: every shape of
route it renders passes, and what the sandbox's API server accepts but istiod's webhook would refuse fails the
check the e2e scenarios make, naming the version and the reason."""

from __future__ import annotations

import asyncio
import copy
from typing import TYPE_CHECKING, Any

import pytest

from modelrollout.identity import ISTIO_GROUP, ISTIO_VERSION, VIRTUAL_SERVICES
from modelrollout.traffic.istio import desired_virtual_service, owned_routes
from tests.support import istio
from tests.support.traffic_specs import NAMESPACE, ROLLOUT, make_spec

if TYPE_CHECKING:
    from tests.conftest import Cluster, NamespacedApi

pytestmark = pytest.mark.integration


def virtual_service(
    weights: dict[str, int], mirror: float | None, candidate: str | None = "v2", **spec_args: Any
) -> dict[str, Any]:
    spec = make_spec(**spec_args)  # slices with exact, prefix and regex header matches
    routes = owned_routes(
        spec,
        name=ROLLOUT,
        namespace=NAMESPACE,
        stable="v1",
        candidate=candidate,
        weights=weights,
        mirror_percent=mirror,
    )
    return desired_virtual_service(spec, name=ROLLOUT, namespace=NAMESPACE, uid="u-1", routes=routes)


EVERY_SLICE = ["ios-na", "android", "beta", "web", "default"]
RENDERED = {
    "stable only": virtual_service({}, None, candidate=None),
    "shadow": virtual_service({}, 100.0),
    "shadow, a share": virtual_service({}, 12.5),
    "canary step": virtual_service(dict.fromkeys(EVERY_SLICE, 25), None, gateways=["istio-system/public"]),
    "promoting": virtual_service(dict.fromkeys(EVERY_SLICE, 100), None),
}


def test_every_shape_of_route_the_operator_renders_passes_istioctl_validate() -> None:
    assert istio.validate(list(RENDERED.values())) == []


BREAKS = {
    "bad regex": (lambda vs: vs["spec"]["http"][3]["match"][0]["headers"].update({"x-b": {"regex": "(("}}),
                  "error parsing regexp"),
    "negative weight": (lambda vs: vs["spec"]["http"][0]["route"][0].update({"weight": -5}), "weight -5 < 0"),
    "mirror 150%": (lambda vs: vs["spec"]["http"][0].update({"mirrorPercentage": {"value": 150}}),
                    "mirror_percentage must have a max value of 100"),
}  # fmt: skip


@pytest.mark.parametrize("name", list(BREAKS))
def test_istioctl_validate_refuses_a_broken_route_and_names_the_version(name: str) -> None:
    good = virtual_service(dict.fromkeys(["android", "default"], 20), 10.0)
    broken = copy.deepcopy(good)
    change, reason = BREAKS[name]
    change(broken)
    good["metadata"]["resourceVersion"], broken["metadata"]["resourceVersion"] = "101", "102"
    [refused] = istio.validate([good, broken])
    assert (refused.name, refused.resource_version) == (ROLLOUT, "102")
    assert reason in refused.errors


def test_a_kind_istioctl_does_not_check_is_refused_rather_than_called_valid() -> None:
    route = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": {"name": "r"}}
    with pytest.raises(istio.NotValidated, match="HTTPRoute"):
        istio.validate([route])


async def test_the_e2e_check_fails_on_a_version_the_api_server_accepted(
    cluster: Cluster, kube: NamespacedApi
) -> None:
    """The sandbox has no istiod webhook: a VirtualService with mirror 150% is stored. The recorder sees every
    version written, and the check the e2e scenarios make fails on the broken one (so `make test` does)."""
    good = virtual_service(dict.fromkeys(["android", "default"], 20), 10.0)
    good["metadata"]["namespace"] = kube.namespace
    del good["metadata"]["ownerReferences"]
    name = good["metadata"]["name"]
    resource = (ISTIO_GROUP, ISTIO_VERSION, kube.namespace, VIRTUAL_SERVICES)
    with istio.WriteRecorder(cluster.kubeconfig, kube.namespace) as recorder:
        await asyncio.sleep(1)  # the watch is established before the first write
        await kube.custom.create_namespaced_custom_object(*resource, good)
        assert istio.validate([good]) == []
        broken: Any = await kube.custom.get_namespaced_custom_object(*resource, name)
        broken["spec"]["http"][0]["mirrorPercentage"] = {"value": 150}
        stored: Any = await kube.custom.replace_namespaced_custom_object(*resource, name, broken)
        fixed = copy.deepcopy(stored)
        fixed["spec"]["http"][0]["mirrorPercentage"] = {"value": 10}
        await kube.custom.replace_namespaced_custom_object(*resource, name, fixed)
        await asyncio.sleep(1)
        written = recorder.stop()
    assert len(written) == 3, [w["metadata"]["resourceVersion"] for w in written]
    with pytest.raises(AssertionError, match="mirror_percentage must have a max value of 100") as failure:
        istio.assert_routes_valid(cluster.kubeconfig, kube.namespace, written)
    assert f"resourceVersion {stored['metadata']['resourceVersion']}" in str(failure.value)


async def test_istioctl_analyze_reports_an_error_in_the_live_namespace(
    cluster: Cluster, kube: NamespacedApi
) -> None:
    """A route bound to a Gateway, and sending to hosts, that do not exist: analyze reports Errors (IST0101),
    which fail the check."""
    vs = virtual_service({}, None, candidate=None, gateways=["no-such-gateway"])
    vs["metadata"]["namespace"] = kube.namespace
    del vs["metadata"]["ownerReferences"]
    await kube.custom.create_namespaced_custom_object(
        ISTIO_GROUP, ISTIO_VERSION, kube.namespace, VIRTUAL_SERVICES, vs
    )
    found = await asyncio.to_thread(istio.analyze, cluster.kubeconfig, kube.namespace)
    refused = istio.errors(found)
    assert {m.code for m in refused} == {"IST0101"}, found
    assert any("no-such-gateway" in m.message for m in refused), found
    with pytest.raises(AssertionError, match="IST0101"):
        istio.assert_routes_valid(cluster.kubeconfig, kube.namespace, [vs])
