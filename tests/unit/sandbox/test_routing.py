"""Route selection on a fixed VirtualService: first match, weights and mirrors, with a seeded RNG."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest

from modelrollout.sandbox.trafficgen import Decision, RoutingTable, loopback_endpoint

V1 = "recommender-v1.ml.svc.cluster.local"
V2 = "recommender-v2.ml.svc.cluster.local"


def _dest(host: str, weight: int | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {"destination": {"host": host, "port": {"number": 8080}}}
    if weight is not None:
        entry["weight"] = weight
    return entry


VIRTUAL_SERVICE: dict[str, Any] = {
    "apiVersion": "networking.istio.io/v1",
    "kind": "VirtualService",
    "metadata": {"name": "recommender", "namespace": "ml"},
    "spec": {
        "hosts": ["recommender.ml.svc.cluster.local"],
        "http": [
            {
                "name": "modelrollout-ios-na",
                "match": [{"headers": {"x-platform": {"exact": "ios"}, "x-region": {"exact": "na"}}}],
                "route": [_dest(V1, 100)],
            },
            {
                "name": "modelrollout-ios",
                "match": [{"headers": {"x-platform": {"exact": "ios"}}}],
                "route": [_dest(V1, 75), _dest(V2, 25)],
                "mirror": {"host": V2},
                "mirrorPercentage": {"value": 30.0},
            },
            {
                "name": "modelrollout-web",
                "match": [
                    {"headers": {"x-platform": {"prefix": "chrome"}}},
                    {"headers": {"x-platform": {"regex": "fire(fox)?"}}},
                ],
                "route": [_dest(V2)],
            },
            {"name": "modelrollout-default", "route": [_dest(V1, 50), _dest(V2, 50)]},
        ],
    },
}


@pytest.fixture
def table() -> RoutingTable:
    return RoutingTable.from_virtual_service(VIRTUAL_SERVICE)


@pytest.mark.parametrize(
    ("headers", "route"),
    [
        ({"x-platform": "ios", "x-region": "na"}, "modelrollout-ios-na"),
        ({"X-Platform": "ios", "X-Region": "na"}, "modelrollout-ios-na"),
        ({"x-platform": "ios", "x-region": "eu"}, "modelrollout-ios"),
        ({"x-platform": "chrome-120"}, "modelrollout-web"),  # first clause of an OR
        ({"x-platform": "firefox"}, "modelrollout-web"),  # second clause
        ({"x-platform": "firefoxes"}, "modelrollout-default"),  # regex matches whole values only
        ({"x-platform": "android"}, "modelrollout-default"),  # a route without match takes the rest
        ({}, "modelrollout-default"),
    ],
)
def test_first_matching_route_wins(table: RoutingTable, headers: dict[str, str], route: str) -> None:
    assert table.route(headers, random.Random(1)).route == route


def test_hosts_lists_destinations_and_mirrors(table: RoutingTable) -> None:
    assert table.hosts == {V1, V2}


def test_weights_split_traffic(table: RoutingTable) -> None:
    rng = random.Random(42)
    n = 20_000
    ios = Counter(table.route({"x-platform": "ios"}, rng).destination for _ in range(n))
    assert ios[V2] / n == pytest.approx(0.25, abs=0.015)
    default = Counter(table.route({}, rng).destination for _ in range(n))
    assert default[V2] / n == pytest.approx(0.5, abs=0.015)
    na = Counter(table.route({"x-platform": "ios", "x-region": "na"}, rng).destination for _ in range(1000))
    assert na == {V1: 1000}


def test_mirror_probability_and_independence(table: RoutingTable) -> None:
    rng = random.Random(7)
    n = 20_000
    decisions = [table.route({"x-platform": "ios"}, rng) for _ in range(n)]
    mirrored = [d for d in decisions if d.mirrors]
    assert all(d.mirrors == (V2,) for d in mirrored)
    assert len(mirrored) / n == pytest.approx(0.30, abs=0.015)
    # The mirror draw does not depend on the destination draw.
    to_v1 = [d for d in decisions if d.destination == V1]
    assert sum(1 for d in to_v1 if d.mirrors) / len(to_v1) == pytest.approx(0.30, abs=0.02)
    # Routes without a mirror never mirror.
    assert not any(table.route({}, rng).mirrors for _ in range(1000))


def test_seeded_rng_gives_the_same_decisions(table: RoutingTable) -> None:
    rng_a, rng_b, rng_c = random.Random(99), random.Random(99), random.Random(100)
    a = [table.route({"x-platform": "ios"}, rng_a) for _ in range(200)]
    b = [table.route({"x-platform": "ios"}, rng_b) for _ in range(200)]
    c = [table.route({"x-platform": "ios"}, rng_c) for _ in range(200)]
    assert a == b
    assert a != c


def _table(*routes: dict[str, Any]) -> RoutingTable:
    return RoutingTable.from_virtual_service({"spec": {"http": list(routes)}})


def test_mirror_defaults_and_variants() -> None:
    rng = random.Random(0)
    full = _table({"route": [_dest(V1)], "mirror": {"host": V2}})  # no percentage: everything is mirrored
    assert all(full.route({}, rng).mirrors == (V2,) for _ in range(200))
    legacy = _table({"route": [_dest(V1)], "mirror": {"host": V2}, "mirrorPercent": 0})
    assert not any(legacy.route({}, rng).mirrors for _ in range(200))
    mirrors = _table(
        {"route": [_dest(V1)], "mirrors": [{"destination": {"host": V2}, "percentage": {"value": 100}}]}
    )
    assert mirrors.route({}, rng).mirrors == (V2,)


def test_no_match_no_destination_and_lone_destination() -> None:
    rng = random.Random(0)
    only_ios = _table(
        {"name": "ios", "match": [{"headers": {"x-platform": {"exact": "ios"}}}], "route": [_dest(V1)]}
    )
    assert only_ios.route({"x-platform": "android"}, rng) == Decision(route=None, destination=None)
    redirect = _table({"name": "moved", "redirect": {"uri": "/v2"}})
    assert redirect.route({}, rng) == Decision(route="moved", destination=None)
    lone = _table({"route": [_dest(V2, 0)]})  # a lone destination takes everything, as in Istio
    assert lone.route({}, rng).destination == V2
    assert lone.route({}, rng).route == "#0"


def test_other_match_fields() -> None:
    rng = random.Random(0)
    without_android = [{"withoutHeaders": {"x-platform": {"exact": "android"}}}]
    predict = [{"uri": {"prefix": "/PRED"}, "ignoreUriCase": True, "method": {"exact": "POST"}}]
    table = _table(
        {"name": "not-android", "match": without_android, "route": [_dest(V1)]},
        {"name": "predict", "match": predict, "route": [_dest(V2)]},
        {"name": "by-source", "match": [{"sourceLabels": {"app": "x"}}], "route": [_dest(V1)]},
        {"name": "presence", "match": [{"headers": {"x-debug": {}}}], "route": [_dest(V1)]},
    )
    assert table.route({}, rng).route == "not-android"
    assert table.route({"x-platform": "android"}, rng).route == "predict"
    assert (
        table.route({"x-platform": "android"}, rng, method="GET").route is None
    )  # sourceLabels never matches
    assert table.route({"x-platform": "android", "x-debug": ""}, rng, method="GET").route == "presence"


def test_empty_or_odd_virtual_services() -> None:
    assert RoutingTable.from_virtual_service({}).route({}, random.Random(0)).route is None
    assert RoutingTable.from_virtual_service({"spec": {"http": None}}).hosts == frozenset()


@pytest.mark.parametrize(
    ("endpoint", "ok"),
    [
        ("127.0.0.1:8080", True),
        ("127.3.4.5:1", True),
        ("[::1]:80", True),
        ("10.0.0.12:8080", False),  # a Service ClusterIP
        ("127.64.0.3", False),  # no port
        ("recommender-v1.ml.svc.cluster.local:8080", False),
        ("localhost:8080", False),
    ],
)
def test_only_loopback_endpoints_are_dialled(endpoint: str, ok: bool) -> None:
    assert loopback_endpoint(endpoint) is ok
