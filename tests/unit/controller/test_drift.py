"""Drift: a person's out-of-band edit of the owned routes is restored within one interval, with a Warning
Event and a counter naming the route (on main it was restored silently)."""

from __future__ import annotations

from typing import Any

from tests.support.controller import NAMESPACE, Harness

SLICES = ["ios", "android", "default"]


async def canary(h: Harness) -> None:
    h.create()
    await h.run_until(lambda s: s.get("phase") == "Succeeded", "v1 stable")
    h.prometheus.healthy(("v1", "v2"), SLICES)
    h.set_version("v2")
    await h.run_until(lambda s: s.get("phase") == "Canary", "canary")
    await h.tick()  # Reconciled is True after the step's writes


def everything_to_candidate(vs: dict[str, Any]) -> None:
    for route in vs["spec"]["http"]:
        if route["name"] == "modelrollout-ios":
            for entry in route["route"]:
                entry["weight"] = 100 if entry["destination"]["host"].startswith("recommender-v2") else 0


async def test_an_edit_of_an_owned_route_is_restored_in_one_tick_with_an_event_and_a_counter() -> None:
    h = Harness()
    await canary(h)
    before = h.weights()
    assert h.kube.event_reasons().count("RoutesDrifted") == 0
    h.kube.edit_virtual_service(NAMESPACE, "recommender", everything_to_candidate)
    assert h.weights() != before
    await h.tick()
    assert h.weights() == before, "restored within one interval"
    drift = [e for e in h.kube.events if e["reason"] == "RoutesDrifted"]
    assert len(drift) == 1
    assert drift[0]["type"] == "Warning"
    assert "modelrollout-ios" in drift[0]["message"]
    counter = h.runtime.metrics.route_drift.labels(NAMESPACE, "recommender", "modelrollout-ios")
    assert counter._value.get() == 1
    await h.tick()
    assert h.kube.event_reasons().count("RoutesDrifted") == 1, "no drift, no Event"


async def test_a_decision_that_moves_the_routes_is_not_drift() -> None:
    h = Harness()
    await canary(h)
    await h.run_until(lambda s: s.get("phase") == "Succeeded", "promoted")
    assert h.kube.event_reasons().count("RoutesDrifted") == 0


async def test_a_foreign_route_before_ours_that_catches_a_slice_is_reported_as_a_condition() -> None:
    h = Harness()
    await canary(h)
    assert h.condition("RoutesShadowed")["status"] == "False"
    catch_all = {
        "name": "hotfix",
        "route": [{"destination": {"host": "hotfix.svc.cluster.local", "port": {"number": 8080}}}],
    }
    h.kube.edit_virtual_service(NAMESPACE, "recommender", lambda vs: vs["spec"]["http"].insert(0, catch_all))
    await h.tick()
    shadowed = h.condition("RoutesShadowed")
    assert (shadowed["status"], shadowed["reason"]) == ("True", "ForeignRouteFirst")
    assert "hotfix shadows modelrollout-ios" in shadowed["message"]
    assert "hotfix shadows modelrollout-default" in shadowed["message"]
    assert h.virtual_service()["spec"]["http"][0]["name"] == "hotfix", "a foreign route is never moved"
