"""Deleting a ModelRollout returns its traffic before garbage collection (the finalizer's handler).

On main nothing ran at deletion: the owned routes stayed in a VirtualService the operator did not create,
pointing at Services that garbage collection deletes (503s), and an operator-created VirtualService went
with its Services in no set order.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from modelrollout.controller.deletion import release_traffic
from modelrollout.identity import CLAIM_ANNOTATION, service_host
from tests.support.controller import NAME, NAMESPACE, Harness

SLICES = ["ios", "android", "default"]
GIT_ROUTE: dict[str, Any] = {
    "name": "primary",
    "route": [{"destination": {"host": "recommender-git.svc.cluster.local", "port": {"number": 8080}}}],
}


async def in_phase(h: Harness, phase: str) -> None:
    await h.run_until(lambda s: s.get("phase") == "Succeeded", "v1 stable")
    h.prometheus.healthy(("v1", "v2"), SLICES)
    h.set_version("v2")
    await h.run_until(lambda s: s.get("phase") == phase, phase)


def hosts(vs: dict[str, Any]) -> set[str]:
    found = set()
    for route in vs["spec"].get("http") or []:
        found |= {d["destination"]["host"] for d in route.get("route") or []}
        if "mirror" in route:
            found.add(route["mirror"]["host"])
    return found


@pytest.mark.parametrize("phase", ["Shadow", "Canary"])
async def test_a_git_held_virtual_service_loses_only_our_routes(phase: str) -> None:
    h = Harness()
    h.kube.virtual_services[(NAMESPACE, "recommender")] = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": "recommender", "namespace": NAMESPACE, "resourceVersion": "1"},
        "spec": {"hosts": ["recommender"], "http": [GIT_ROUTE]},
    }
    h.create()
    await in_phase(h, phase)
    assert service_host(NAME, "v2", NAMESPACE) in hosts(h.virtual_service())
    writes = h.kube.writes["virtualservice"]
    done = await release_traffic(h.runtime, h.kube.rollout(NAMESPACE, NAME))
    vs = h.virtual_service()
    assert vs["spec"]["http"] == [GIT_ROUTE], done
    assert CLAIM_ANNOTATION not in (vs["metadata"].get("annotations") or {})
    assert h.kube.writes["virtualservice"] == writes + 1, "one VirtualService write"


async def test_an_operator_created_virtual_service_goes_all_stable_then_away() -> None:
    h = Harness()
    h.create()
    await in_phase(h, "Canary")
    seen: list[dict[str, Any]] = []
    h.kube.on(
        "patch",
        "virtualservice",
        lambda k: seen.append(copy.deepcopy(k.virtual_service(NAMESPACE, "recommender"))),
        after=True,
    )
    await release_traffic(h.runtime, h.kube.rollout(NAMESPACE, NAME))
    assert h.kube.virtual_service(NAMESPACE, "recommender") is None
    assert len(seen) == 1
    assert hosts(seen[0]) == {service_host(NAME, "v1", NAMESPACE)}, "every slice on stable first"


async def test_a_conflict_reads_again_and_a_virtual_service_of_another_rollout_is_left_alone() -> None:
    h = Harness()
    h.create()
    await in_phase(h, "Canary")
    h.kube.fail("delete", "virtualservice", status=409, message="modified")
    await release_traffic(h.runtime, h.kube.rollout(NAMESPACE, NAME))
    assert h.kube.virtual_service(NAMESPACE, "recommender") is None

    other = Harness()
    other.kube.virtual_services[(NAMESPACE, "recommender")] = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {
            "name": "recommender",
            "namespace": NAMESPACE,
            "resourceVersion": "1",
            "annotations": {CLAIM_ANNOTATION: "someone-else"},
        },
        "spec": {"hosts": ["x"], "http": [GIT_ROUTE]},
    }
    other.create()
    before = copy.deepcopy(other.kube.virtual_service(NAMESPACE, "recommender"))
    await release_traffic(other.runtime, other.kube.rollout(NAMESPACE, NAME))
    assert other.kube.virtual_service(NAMESPACE, "recommender") == before
