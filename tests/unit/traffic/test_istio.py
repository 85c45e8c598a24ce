"""Example-based tests of the Istio route rendering, merging, comparison and read-back."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from modelrollout.identity import service_host
from modelrollout.traffic.istio import (
    ObservedRoute,
    desired_virtual_service,
    is_owned,
    merge_routes,
    observed_mirror,
    observed_weights,
    owned_routes,
    read_routes,
    route_name,
    routes_equal,
)
from tests.support.traffic_specs import NAMESPACE, ROLLOUT, make_spec

STABLE = "v1"
CANDIDATE = "v2"
STABLE_HOST = service_host("recommender", "v1", NAMESPACE)
CANDIDATE_HOST = service_host("recommender", "v2", NAMESPACE)


def render(
    slices: list[dict[str, Any]] | None = None,
    candidate: str | None = CANDIDATE,
    weights: dict[str, int] | None = None,
    mirror: float | None = None,
    **spec_args: Any,
) -> list[dict[str, Any]]:
    return owned_routes(
        make_spec(slices, **spec_args),
        name=ROLLOUT,
        namespace=NAMESPACE,
        stable=STABLE,
        candidate=candidate,
        weights=weights or {},
        mirror_percent=mirror,
    )


def foreign(name: str | None) -> dict[str, Any]:
    route: dict[str, Any] = {
        "match": [{"uri": {"prefix": f"/{name or 'anon'}"}}],
        "route": [{"destination": {"host": "legacy.ml.svc.cluster.local"}}],
        "timeout": "3s",
    }
    if name is not None:
        route["name"] = name
    return route


# Rendering --------------------------------------------------------------------------------------------------
def test_hosts_are_the_per_version_service_fqdns() -> None:
    assert service_host(ROLLOUT, STABLE, NAMESPACE) == STABLE_HOST
    assert service_host(ROLLOUT, CANDIDATE, NAMESPACE) == CANDIDATE_HOST


def test_one_route_per_slice_in_order_then_default() -> None:
    routes = render()
    assert [r["name"] for r in routes] == [
        "modelrollout-ios-na",
        "modelrollout-android",
        "modelrollout-beta",
        "modelrollout-web",
        "modelrollout-default",
    ]
    assert "match" not in routes[-1]


def test_match_carries_every_header_of_the_slice_in_one_block() -> None:
    routes = render()
    assert routes[0]["match"] == [{"headers": {"x-platform": {"exact": "ios"}, "x-region": {"exact": "na"}}}]
    assert routes[2]["match"] == [{"headers": {"x-user": {"prefix": "beta-"}}}]
    assert routes[3]["match"] == [{"headers": {"user-agent": {"regex": "Mozilla/.*"}}}]


def test_canary_weights_per_slice() -> None:
    routes = render(weights={"ios-na": 5, "android": 25, "default": 100})
    by_name = {r["name"]: r["route"] for r in routes}
    assert by_name["modelrollout-ios-na"] == [
        {"destination": {"host": STABLE_HOST, "port": {"number": 8080}}, "weight": 95},
        {"destination": {"host": CANDIDATE_HOST, "port": {"number": 8080}}, "weight": 5},
    ]
    assert [d["weight"] for d in by_name["modelrollout-android"]] == [75, 25]
    # Undeclared weight: 0, and a candidate at 0 is not listed at all.
    assert by_name["modelrollout-beta"] == [
        {"destination": {"host": STABLE_HOST, "port": {"number": 8080}}, "weight": 100}
    ]
    # Full promotion keeps stable listed first at 0, so the layout is the same at every weight.
    assert [(d["destination"]["host"], d["weight"]) for d in by_name["modelrollout-default"]] == [
        (STABLE_HOST, 0),
        (CANDIDATE_HOST, 100),
    ]


def test_no_candidate_routes_everything_to_stable() -> None:
    for route in render(candidate=None):
        assert route["route"] == [
            {"destination": {"host": STABLE_HOST, "port": {"number": 8080}}, "weight": 100}
        ]
        assert "mirror" not in route
        assert "mirrorPercentage" not in route


def test_shadow_mirrors_every_route_to_the_candidate() -> None:
    routes = render(mirror=37.5)
    for route in routes:
        assert route["mirror"] == {"host": CANDIDATE_HOST, "port": {"number": 8080}}
        assert route["mirrorPercentage"] == {"value": 37.5}
        assert isinstance(route["mirrorPercentage"]["value"], float)
        assert [d["destination"]["host"] for d in route["route"]] == [STABLE_HOST]


def test_mirror_percent_zero_means_no_mirror() -> None:
    assert all("mirror" not in r for r in render(mirror=0))


def test_destination_port_prefers_the_istio_port() -> None:
    routes = render(port=9000, weights={"default": 10}, mirror=10)
    assert {d["destination"]["port"]["number"] for d in routes[-1]["route"]} == {9000}
    assert routes[-1]["mirror"]["port"] == {"number": 9000}
    routes = render(readiness_port=8501, weights={"default": 10})
    assert {d["destination"]["port"]["number"] for d in routes[-1]["route"]} == {8501}


def test_weights_for_removed_slices_are_ignored() -> None:
    routes = render(weights={"gone": 50, "android": 10})
    assert observed_weights(routes) == {"ios-na": 0, "android": 10, "beta": 0, "web": 0, "default": 0}


@pytest.mark.parametrize("weight", [-1, 101, True, 2.5, "10"])
def test_bad_weights_are_refused(weight: Any) -> None:
    with pytest.raises(ValueError, match="canary weight of slice 'android'"):
        render(weights={"android": weight})


def test_weight_or_mirror_without_candidate_is_refused() -> None:
    with pytest.raises(ValueError, match="no candidate"):
        render(candidate=None, weights={"default": 5})
    with pytest.raises(ValueError, match="without a candidate"):
        render(candidate=None, mirror=100)


@pytest.mark.parametrize("percent", [-5.0, 100.5, float("nan"), float("inf")])
def test_bad_mirror_percent_is_refused(percent: float) -> None:
    with pytest.raises(ValueError, match="mirror percent"):
        render(mirror=percent)


def test_rendering_does_not_mutate_the_spec() -> None:
    spec = make_spec()
    before = spec.model_dump()
    routes = owned_routes(
        spec, name=ROLLOUT, namespace=NAMESPACE, stable=STABLE, candidate=CANDIDATE, weights={"beta": 5}
    )
    routes[0]["match"][0]["headers"]["x-platform"]["exact"] = "changed"
    assert spec.model_dump() == before


def test_desired_virtual_service() -> None:
    spec = make_spec(gateways=["istio-system/public"])
    routes = render(weights={"default": 5})
    vs = desired_virtual_service(spec, name=ROLLOUT, namespace=NAMESPACE, uid="uid-1", routes=routes)
    assert vs["apiVersion"] == "networking.istio.io/v1"
    assert vs["kind"] == "VirtualService"
    assert vs["metadata"]["name"] == "recommender"
    assert vs["metadata"]["namespace"] == NAMESPACE
    assert vs["metadata"]["labels"] == {
        "app.kubernetes.io/managed-by": "modelrollout",
        "modelrollout.io/rollout": ROLLOUT,
    }
    assert vs["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "modelrollout.io/v1alpha1",
            "kind": "ModelRollout",
            "name": ROLLOUT,
            "uid": "uid-1",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert vs["spec"] == {
        "hosts": ["recommender.ml.svc.cluster.local"],
        "gateways": ["istio-system/public"],
        "http": routes,
    }
    assert vs["spec"]["http"] is not routes


def test_desired_virtual_service_without_gateways_binds_to_the_mesh() -> None:
    vs = desired_virtual_service(make_spec([]), name=ROLLOUT, namespace=NAMESPACE, uid="u", routes=render([]))
    assert "gateways" not in vs["spec"]
    assert [r["name"] for r in vs["spec"]["http"]] == ["modelrollout-default"]


# Merging ----------------------------------------------------------------------------------------------------
def test_merge_appends_when_nothing_is_owned_yet() -> None:
    live = [foreign("api"), foreign(None)]
    owned = render(weights={"default": 5})
    assert merge_routes(live, owned) == [foreign("api"), foreign(None), *owned]


def test_merge_replaces_at_the_first_owned_position_and_drops_stale_routes() -> None:
    stale = {"name": route_name("retired"), "route": [{"destination": {"host": "x"}}]}
    old_default = {"name": route_name("default"), "route": [{"destination": {"host": "y"}}]}
    live = [foreign("first"), stale, foreign("between"), old_default, foreign("last")]
    owned = render(weights={"android": 25})
    merged = merge_routes(live, owned)
    assert merged == [foreign("first"), *owned, foreign("between"), foreign("last")]
    assert merge_routes(merged, owned) == merged


def test_merge_does_not_alias_or_mutate_its_inputs() -> None:
    live = [foreign("api"), *render()]
    live_before = copy.deepcopy(live)
    owned = render(weights={"default": 50})
    merged = merge_routes(live, owned)
    merged[0]["timeout"] = "99s"
    merged[1]["name"] = "changed"
    assert live == live_before
    assert owned[0]["name"] == "modelrollout-ios-na"


def test_is_owned_only_for_the_prefix() -> None:
    assert is_owned({"name": "modelrollout-default"})
    assert not is_owned({"name": "modelrollout"})
    assert not is_owned({"name": "my-modelrollout-x"})
    assert not is_owned({})


# Comparing --------------------------------------------------------------------------------------------------
def test_routes_equal_ignores_what_the_server_may_change() -> None:
    desired = render(weights={"android": 25}, mirror=100)
    live = copy.deepcopy(desired)
    for route in live:
        for destination in route["route"]:
            destination["weight"] = float(destination["weight"])
        route["mirrorPercentage"]["value"] = 100  # stored as an integer
        route["corsPolicy"] = {}  # an empty field written back by a client
        route["match"] = route.get("match", [])  # absent vs empty list
        route.setdefault("mirrors", [])
    reordered = [dict(reversed(list(r.items()))) for r in live]
    assert routes_equal(live, desired)
    assert routes_equal(reordered, desired)


def test_routes_equal_treats_a_lone_destination_without_weight_as_all_traffic() -> None:
    desired = render(candidate=None)
    live = copy.deepcopy(desired)
    for route in live:
        del route["route"][0]["weight"]
    assert routes_equal(live, desired)


def test_routes_equal_sees_real_differences() -> None:
    desired = render(weights={"android": 25})
    assert not routes_equal(render(weights={"android": 26}), desired)
    assert not routes_equal(render(weights={"android": 25}, mirror=50), desired)
    assert not routes_equal(list(reversed(desired)), desired)
    assert not routes_equal(desired[:-1], desired)
    assert not routes_equal([foreign("x"), *desired], desired)
    two = render(weights={"default": 10})
    changed = copy.deepcopy(two)
    del changed[-1]["route"][0]["weight"]  # with two destinations an unset weight is not 100
    assert not routes_equal(changed, two)
    assert routes_equal(None, [])


# Reading back ----------------------------------------------------------------------------------------------
def test_observed_weights_and_mirror_round_trip() -> None:
    weights = {"ios-na": 5, "android": 25, "beta": 0, "web": 100, "default": 50}
    routes = render(weights=weights, mirror=12.5)
    live = [foreign("api"), *routes]
    assert observed_weights(live) == weights
    assert observed_weights(live, candidate_host=CANDIDATE_HOST) == weights
    assert observed_mirror(live) == dict.fromkeys(weights, 12.5)
    assert observed_mirror(live, candidate_host=CANDIDATE_HOST) == dict.fromkeys(weights, 12.5)
    assert observed_mirror(live, candidate_host=STABLE_HOST) == dict.fromkeys(weights, 0.0)


def test_observed_weights_normalise_relative_weights_and_defaults() -> None:
    live: list[dict[str, Any]] = [
        {
            "name": "modelrollout-a",
            "route": [
                {"destination": {"host": STABLE_HOST}, "weight": 3},
                {"destination": {"host": CANDIDATE_HOST}, "weight": 1},
            ],
        },
        {"name": "modelrollout-b", "route": [{"destination": {"host": CANDIDATE_HOST}}]},
        {"name": "modelrollout-c", "route": []},
        {"name": "modelrollout-default", "route": [{"destination": {"host": STABLE_HOST}, "weight": 100.0}]},
    ]
    assert observed_weights(live, candidate_host=CANDIDATE_HOST) == {"a": 25, "b": 100, "c": 0, "default": 0}
    assert observed_weights(live) == {"a": 25, "b": 0, "c": 0, "default": 0}


def test_observed_mirror_reads_istio_defaults_and_legacy_fields() -> None:
    mirror = {"host": CANDIDATE_HOST}
    live: list[dict[str, Any]] = [
        {"name": "modelrollout-all", "mirror": mirror},  # no percentage: Istio mirrors everything
        {"name": "modelrollout-legacy", "mirror": mirror, "mirrorPercent": 30},
        {"name": "modelrollout-none", "mirrorPercentage": {"value": 50}},  # no mirror target: nothing
        {"name": "modelrollout-default", "mirror": mirror, "mirrorPercentage": {"value": 0.5}},
    ]
    assert observed_mirror(live) == {"all": 100.0, "legacy": 30.0, "none": 0.0, "default": 0.5}


def test_read_routes_gives_what_a_traffic_generator_needs() -> None:
    observed = read_routes([foreign("api"), *render(weights={"android": 25}, mirror=10)])
    assert [r.slice for r in observed] == ["ios-na", "android", "beta", "web", "default"]
    android = observed[1]
    assert isinstance(android, ObservedRoute)
    assert android.headers == {"x-platform": {"exact": "android"}}
    assert [(d.host, d.port, d.weight) for d in android.destinations] == [
        (STABLE_HOST, 8080, 75),
        (CANDIDATE_HOST, 8080, 25),
    ]
    assert (android.mirror_host, android.mirror_port, android.mirror_percent) == (CANDIDATE_HOST, 8080, 10.0)
    assert observed[-1].headers == {}
    assert android.weight_to(CANDIDATE_HOST) == 25
