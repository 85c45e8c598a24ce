"""The QA override and the blue-green preview: header routes to the candidate, first, left out of analysis."""

from __future__ import annotations

from typing import Any

import pytest

from modelrollout.errors import InvalidRoutes
from modelrollout.identity import SLICE_HEADER, workload_name
from modelrollout.sandbox.trafficgen import RoutingTable
from modelrollout.serving.slices import SliceClassifier
from modelrollout.traffic.istio import observed_overrides, observed_weights, owned_routes, read_routes
from tests.support.traffic_specs import NAMESPACE, PLATFORM_SLICES, ROLLOUT, make_spec

CANDIDATE_HOST = f"{workload_name(ROLLOUT, 'v2')}.{NAMESPACE}.svc.cluster.local"
STABLE_HOST = f"{workload_name(ROLLOUT, 'v1')}.{NAMESPACE}.svc.cluster.local"
STRATEGY: dict[str, Any] = {
    "blueGreen": {"preview": {"header": "x-preview"}},
    "qaOverride": {"header": "x-canary-override", "value": {"exact": "yes"}},
}


def render(
    *, qa: bool, preview: bool, weight: int = 0, strategy: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    spec = make_spec(strategy=strategy or STRATEGY)
    return owned_routes(
        spec,
        name=ROLLOUT,
        namespace=NAMESPACE,
        stable="v1",
        candidate="v2",
        weights=dict.fromkeys(spec.slice_names(), weight),
        qa=qa,
        preview=preview,
    )


def test_override_routes_come_first_send_to_the_candidate_and_carry_an_excluded_slice_label() -> None:
    routes = render(qa=True, preview=True)
    qa, preview = routes[0], routes[1]
    assert qa == {
        "name": "modelrollout-qa.override",
        "match": [{"headers": {"x-canary-override": {"exact": "yes"}}}],
        "headers": {"request": {"set": {SLICE_HEADER: "_qa"}}},
        "route": [{"destination": {"host": CANDIDATE_HOST, "port": {"number": 8080}}, "weight": 100}],
    }
    assert preview["name"] == "modelrollout-preview.override"
    assert preview["match"] == [{"headers": {"x-preview": {"exact": "true"}}}]
    assert preview["headers"]["request"]["set"][SLICE_HEADER] == "_preview"
    assert [r["name"] for r in routes[2:]] == [f"modelrollout-{s['name']}" for s in PLATFORM_SLICES] + [
        "modelrollout-default"
    ]


def test_read_back_keeps_slices_and_overrides_apart() -> None:
    routes = render(qa=True, preview=False, weight=100)
    assert observed_overrides(routes) == {"qa": CANDIDATE_HOST}
    assert set(observed_weights(routes).values()) == {100}
    assert "qa" not in observed_weights(routes)
    assert [r.override for r in read_routes(routes)][:2] == [True, False]


def test_an_override_route_without_its_header_or_candidate_is_refused() -> None:
    canary = {"canary": {"steps": [{"weight": 10}]}}
    with pytest.raises(InvalidRoutes, match="no preview header"):
        render(qa=False, preview=True, strategy=canary)
    with pytest.raises(InvalidRoutes, match="no qa header"):
        render(qa=True, preview=False, strategy=canary)
    spec = make_spec(strategy=STRATEGY)
    with pytest.raises(InvalidRoutes, match="needs a candidate"):
        owned_routes(
            spec, name=ROLLOUT, namespace=NAMESPACE, stable="v1", candidate=None, weights={}, qa=True
        )


def test_a_qa_request_of_any_slice_reaches_the_candidate_and_the_server_labels_it_out_of_analysis() -> None:
    """Envoy's part (first matching route, headers set) as the sandbox plays it, then the server's label."""
    import random

    table = RoutingTable.from_virtual_service({"spec": {"http": render(qa=True, preview=False)}})
    classifier = SliceClassifier(make_spec(strategy=STRATEGY).slices)
    for platform in ("ios", "android"):
        request = {"x-platform": platform, "x-region": "na", "x-canary-override": "yes"}
        decision = table.route(request, random.Random(1))
        assert decision.destination == CANDIDATE_HOST
        assert classifier.classify({**request, **decision.headers}) == "_qa"
        plain = table.route({"x-platform": platform, "x-region": "na"}, random.Random(1))
        assert plain.destination == STABLE_HOST
        assert classifier.classify({"x-platform": platform, **plain.headers}) != "_qa"


def test_the_server_never_trusts_an_unknown_slice_label() -> None:
    classifier = SliceClassifier(make_spec(strategy=STRATEGY).slices)
    assert classifier.classify({SLICE_HEADER: "_made_up", "x-platform": "android"}) == "android"
