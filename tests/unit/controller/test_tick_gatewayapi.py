"""The reconcile tick with the Gateway API provider: the same planner, its routes written as HTTPRoute rules."""

from __future__ import annotations

from typing import Any

from modelrollout.identity import CLAIM_ANNOTATION, workload_name
from tests.support.controller import NAME, NAMESPACE, Harness
from tests.support.specs import gateway_api

SLICES = ["ios", "android", "default"]
NOTIFY = "http://hooks.test/notify"


def phase_is(*phases: str) -> Any:
    return lambda status: status.get("phase") in phases


async def stable_v1(h: Harness, **overrides: Any) -> None:
    h.create(traffic=gateway_api(), **overrides)
    await h.run_until(phase_is("Succeeded"), "v1 stable")
    h.prometheus.healthy(("v1", "v2"), SLICES)


async def test_a_healthy_rollout_moves_the_http_route_through_shadow_and_both_steps() -> None:
    h = Harness()
    await stable_v1(h)
    route = h.http_route()
    assert route["metadata"]["ownerReferences"][0]["name"] == NAME
    assert route["metadata"]["annotations"] == {CLAIM_ANNOTATION: NAME}
    assert route["spec"]["parentRefs"] == [{"group": "", "kind": "Service", "name": "recommender"}]
    assert h.weights() == dict.fromkeys(SLICES, 0)
    assert h.kube.virtual_services == {}, "the Istio provider was written too"
    h.set_version("v2")
    seen: list[dict[str, int]] = []
    mirrored: list[bool] = []

    def watch(status: dict[str, Any]) -> bool:
        seen.append(h.weights())
        mirrored.append(any(len(r["filters"]) > 1 for r in h.http_route()["spec"]["rules"]))
        return status.get("phase") == "Succeeded"

    await h.run_until(watch, "v2 promoted")
    assert h.status["stableVersion"] == "v2"
    assert any(mirrored), "the shadow phase never mirrored"
    assert {w["ios"] for w in seen} >= {10, 50}, "both canary steps reached the rules"
    backends = [r["backendRefs"] for r in h.http_route()["spec"]["rules"]]
    assert (
        backends
        == [
            [{"group": "", "kind": "Service", "name": workload_name(NAME, "v2"), "port": 8080, "weight": 100}]
        ]
        * 3
    )
    assert h.kube.virtual_services == {}


async def test_a_failing_slice_rolls_back_in_one_http_route_write() -> None:
    h = Harness()
    await stable_v1(h, rollback={"notify": [{"webhook": {"url": NOTIFY}}]})
    h.prometheus.counts[("android", "v2")] = (1000.0, 200.0)
    h.set_version("v2")
    writes_before = h.kube.count("patch", "httproute")
    await h.run_until(phase_is("RolledBack"), "rolled back")
    assert "slice android" in h.status["message"]
    assert h.weights() == dict.fromkeys(SLICES, 0)
    assert all(len(r["filters"]) == 1 for r in h.http_route()["spec"]["rules"]), "the mirror stayed"
    # Shadow start (mirror on) and the rollback (mirror off): nothing else touched the rules.
    assert h.kube.count("patch", "httproute") - writes_before == 2
    assert [body["reason"] for body in h.hooks.to(NOTIFY)][-1] == "GuardFailed"


async def test_an_http_route_claimed_by_another_rollout_is_refused_naming_it() -> None:
    h = Harness()
    h.kube.http_routes[(NAMESPACE, "recommender")] = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {
            "name": "recommender",
            "namespace": NAMESPACE,
            "resourceVersion": "1",
            "annotations": {CLAIM_ANNOTATION: "someone-else"},
        },
        "spec": {"parentRefs": [{"name": "gw"}], "rules": []},
    }
    h.create(traffic=gateway_api())
    for _ in range(3):
        await h.tick()
    reconciled = h.condition("Reconciled")
    assert (reconciled["status"], reconciled["reason"]) == ("False", "ApplyFailed")
    assert f"HTTPRoute {NAMESPACE}/recommender" in reconciled["message"]
    assert "someone-else" in reconciled["message"]
    assert h.kube.http_route(NAMESPACE, "recommender")["spec"]["rules"] == []  # type: ignore[index]


async def test_a_conflicting_write_is_decided_again_on_the_fresh_http_route() -> None:
    h = Harness()
    await stable_v1(h)

    edits: list[int] = []

    def someone_edits(kube: Any) -> None:
        if edits:
            return  # once: the operator's retry must then succeed
        edits.append(1)
        stored = kube.http_routes[(NAMESPACE, "recommender")]
        stored["spec"]["rules"].insert(
            0, {"name": "api", "matches": [{"path": {"type": "PathPrefix", "value": "/api"}}]}
        )
        stored["metadata"]["resourceVersion"] = str(int(stored["metadata"]["resourceVersion"]) + 1000)

    h.kube.on("patch", "httproute", someone_edits)
    h.set_version("v2")
    await h.run_until(lambda s: s.get("phase") == "Shadow", "shadow")
    assert edits, "no write was raced"
    rules = h.http_route()["spec"]["rules"]
    assert rules[0]["name"] == "api", "the other writer's rule was lost"
    assert any(len(r["filters"]) > 1 for r in rules if r["name"].startswith("modelrollout-"))
