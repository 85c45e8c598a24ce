"""No confused deputy: the operator never takes over a Deployment or Service it did not create."""

from __future__ import annotations

import copy
from typing import Any

from modelrollout.identity import workload_name
from tests.support.controller import NAME, NAMESPACE, Harness


def foreign_service(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": {"team": "payments"}},
        "spec": {"selector": {"app": "payments"}, "ports": [{"port": 80}]},
    }


async def test_a_same_named_service_it_does_not_own_is_refused_with_a_condition() -> None:
    h = Harness()
    h.create()
    name = workload_name(NAME, "v1")
    theirs = foreign_service(name)
    h.kube.services[(NAMESPACE, name)] = copy.deepcopy(theirs)
    for _ in range(3):
        await h.tick()
    assert h.kube.services[(NAMESPACE, name)] == theirs, "the foreign Service was changed"
    assert (NAMESPACE, name) not in h.kube.deployments
    reconciled = h.condition("Reconciled")
    assert reconciled["status"] == "False"
    assert f"Service {NAMESPACE}/{name}" in reconciled["message"]
    assert "not owned by this ModelRollout" in reconciled["message"]
    assert h.status.get("phase") != "Succeeded"


async def test_its_own_workloads_are_still_updated() -> None:
    h = Harness()
    h.create()
    await h.run_until(lambda s: s.get("phase") == "Succeeded", "v1 stable")
    assert h.condition("Reconciled")["status"] == "True"
