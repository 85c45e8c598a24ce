"""A/B routes: per slice, the candidate's buckets of the sticky key reach it; everyone else stays on stable."""

from __future__ import annotations

import random

import pytest

from modelrollout.errors import InvalidRoutes
from modelrollout.identity import service_host
from modelrollout.sandbox.trafficgen import RoutingTable
from modelrollout.serving.slices import SliceClassifier
from modelrollout.traffic.istio import observed_weights, owned_routes, read_routes
from tests.support.traffic_specs import NAMESPACE, ROLLOUT, make_spec

STRATEGY = {
    "experiment": {
        "assignment": {"header": "x-user-id", "candidatePercent": 25},
        "metric": {"successes": "model_conversions_total"},
        "minimumDetectableEffect": 0.1,
    }
}
STABLE = service_host(ROLLOUT, "v1", NAMESPACE)
CANDIDATE = service_host(ROLLOUT, "v2", NAMESPACE)


def render(experiment: bool = True) -> list[dict[str, object]]:
    spec = make_spec(strategy=STRATEGY)
    weights = dict.fromkeys(spec.slice_names(), 0)
    return owned_routes(
        spec,
        name=ROLLOUT,
        namespace=NAMESPACE,
        stable="v1",
        candidate="v2",
        weights=weights,
        experiment=experiment,
    )


def test_every_slice_gets_its_arm_route_first_and_the_slice_weights_stay_on_stable() -> None:
    routes = render()
    names = [str(r["name"]) for r in routes]
    assert names[0].endswith(".candidate-arm")
    slices = [n for n in names if not n.endswith(".candidate-arm")]
    assert [f"{n}.candidate-arm" for n in slices] == [n for n in names if n.endswith(".candidate-arm")]
    assert set(observed_weights(routes).values()) == {0}
    assert [r.slice for r in read_routes(routes) if r.arm] == [
        n.removeprefix("modelrollout-") for n in slices
    ]


def test_users_reach_one_arm_for_good_with_a_quarter_on_the_candidate_and_keep_their_slice() -> None:
    table = RoutingTable.from_virtual_service({"spec": {"http": render()}})
    classifier = SliceClassifier(make_spec(strategy=STRATEGY).slices)
    rng = random.Random(3)
    users = [f"{rng.getrandbits(64):016x}" for _ in range(4000)]
    on_candidate = 0
    requests = {
        "ios-na": {"x-platform": "ios", "x-region": "na"},
        "android": {"x-platform": "android"},
        "default": {"x-platform": "tv"},
    }
    for expected_slice, headers in requests.items():
        for user in users:
            request = {**headers, "x-user-id": user}
            first = table.route(request, rng)
            again = table.route(request, rng)
            assert first.destination == again.destination, "a user changed arms"
            wanted = CANDIDATE if int(user[-2:], 16) < 64 else STABLE
            assert first.destination == wanted
            on_candidate += first.destination == CANDIDATE
            label = classifier.classify({**request, **first.headers})
            assert label == expected_slice
    assert abs(on_candidate / (3 * len(users)) - 0.25) < 0.02


def test_arm_routes_need_an_experiment_and_a_candidate() -> None:
    spec = make_spec(strategy={"canary": {"steps": [{"weight": 10}]}})
    with pytest.raises(InvalidRoutes, match="no experiment"):
        owned_routes(
            spec, name=ROLLOUT, namespace=NAMESPACE, stable="v1", candidate="v2", weights={}, experiment=True
        )
    with pytest.raises(InvalidRoutes, match="need a candidate"):
        owned_routes(
            make_spec(strategy=STRATEGY),
            name=ROLLOUT,
            namespace=NAMESPACE,
            stable="v1",
            candidate=None,
            weights={},
            experiment=True,
        )
