"""Rendered VirtualServices against the real API server with Istio's VirtualService CRD."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

import pytest
from kubernetes.aio.client import ApiException

from modelrollout.identity import service_host
from modelrollout.traffic.istio import (
    desired_virtual_service,
    is_owned,
    merge_routes,
    observed_mirror,
    observed_overrides,
    observed_weights,
    owned_routes,
    routes_equal,
)

from .helpers import ISTIO, ROLLOUT, create, create_rollout, make_spec

if TYPE_CHECKING:
    from tests.conftest import NamespacedApi

pytestmark = pytest.mark.integration

VS_PATH = "/apis/networking.istio.io/v1/namespaces/{namespace}/virtualservices"

# (candidate, weights, mirror percent): before a rollout, shadow, canary steps, full promotion.
STATES: dict[str, tuple[str | None, dict[str, int], float | None]] = {
    "stable-only": (None, {}, None),
    "shadow": ("v2", {}, 100.0),
    "partial-shadow": ("v2.0.1", {}, 12.5),
    "canary": ("v2", {"ios-na": 5, "android": 25, "beta": 50, "web": 1, "default": 5}, None),
    "promoted": ("v2", {"ios-na": 100, "android": 100, "beta": 100, "web": 100, "default": 100}, None),
}


async def get_vs(kube: NamespacedApi, name: str = "recommender") -> dict[str, Any]:
    found: Any = await kube.custom.get_namespaced_custom_object(
        *ISTIO, kube.namespace, "virtualservices", name
    )
    assert isinstance(found, dict)
    return found


@pytest.mark.parametrize("slice_count", [0, 1, 4])
@pytest.mark.parametrize("state", list(STATES))
async def test_rendered_virtual_service_is_accepted_and_round_trips(
    kube: NamespacedApi, slice_count: int, state: str
) -> None:
    candidate, weights, mirror = STATES[state]
    spec = make_spec(slice_count)
    uid = await create_rollout(kube.custom, kube.namespace, spec)
    routes = owned_routes(
        spec,
        name=ROLLOUT,
        namespace=kube.namespace,
        stable="v1",
        candidate=candidate,
        weights=weights,
        mirror_percent=mirror,
    )
    body = desired_virtual_service(spec, name=ROLLOUT, namespace=kube.namespace, uid=uid, routes=routes)
    await create(kube.api, VS_PATH.format(namespace=kube.namespace), body)

    live = await get_vs(kube)
    assert live["metadata"]["ownerReferences"][0]["uid"] == uid
    assert live["metadata"]["labels"]["modelrollout.io/rollout"] == ROLLOUT
    assert live["spec"]["hosts"] == ["recommender.example.svc.cluster.local"]
    assert routes_equal(live["spec"]["http"], routes)
    assert [r["name"] for r in live["spec"]["http"]] == [f"modelrollout-{n}" for n in spec.slice_names()]
    expected_weights = {name: weights.get(name, 0) for name in spec.slice_names()}
    candidate_host = service_host(ROLLOUT, candidate, kube.namespace) if candidate else None
    assert observed_weights(live["spec"]["http"]) == expected_weights
    assert observed_weights(live["spec"]["http"], candidate_host=candidate_host) == expected_weights
    assert set(observed_mirror(live["spec"]["http"]).values()) == {mirror or 0.0}
    # Written again from what the server returned, nothing would change: the controller skips the write.
    assert routes_equal(live["spec"]["http"], merge_routes(live["spec"]["http"], routes))


BLUE_GREEN = {
    "blueGreen": {"preview": {"header": "x-preview"}, "bake": "5m"},
    "qaOverride": {"header": "x-canary-override", "value": {"regex": "true|1"}},
}


@pytest.mark.parametrize("switched", [False, True])
async def test_preview_and_qa_override_routes_are_accepted_and_round_trip(
    kube: NamespacedApi, switched: bool
) -> None:
    spec = make_spec(2, strategy=BLUE_GREEN)
    uid = await create_rollout(kube.custom, kube.namespace, spec)
    weight = 100 if switched else 0
    routes = owned_routes(
        spec,
        name=ROLLOUT,
        namespace=kube.namespace,
        stable="v1",
        candidate="v2",
        weights=dict.fromkeys(spec.slice_names(), weight),
        qa=True,
        preview=not switched,
    )
    body = desired_virtual_service(spec, name=ROLLOUT, namespace=kube.namespace, uid=uid, routes=routes)
    await create(kube.api, VS_PATH.format(namespace=kube.namespace), body)
    live = await get_vs(kube)
    http = live["spec"]["http"]
    assert routes_equal(http, routes)
    overrides = ["modelrollout-qa.override"] + ([] if switched else ["modelrollout-preview.override"])
    assert [r["name"] for r in http] == overrides + [f"modelrollout-{n}" for n in spec.slice_names()]
    candidate_host = service_host(ROLLOUT, "v2", kube.namespace)
    assert observed_overrides(http) == dict.fromkeys(
        ["qa", *([] if switched else ["preview"])], candidate_host
    )
    assert observed_weights(http) == dict.fromkeys(spec.slice_names(), weight)


async def test_the_crd_schema_is_enforced(kube: NamespacedApi) -> None:
    """Guards the test above: the server must refuse routes Istio's schema does not allow."""
    spec = make_spec(1)
    routes = owned_routes(
        spec, name=ROLLOUT, namespace=kube.namespace, stable="v1", candidate="v2", weights={"default": 10}
    )
    bad_weight = copy.deepcopy(routes)
    bad_weight[-1]["route"][1]["weight"] = "ten"
    both_matches = copy.deepcopy(routes)
    both_matches[0]["match"][0]["headers"]["x-platform"]["prefix"] = "io"
    unknown_field = copy.deepcopy(routes)
    unknown_field[0]["mirrorPercentge"] = {"value": 5.0}
    for index, bad in enumerate((bad_weight, both_matches, unknown_field)):
        body = desired_virtual_service(spec, name=ROLLOUT, namespace=kube.namespace, uid="u", routes=bad)
        body["metadata"]["name"] = f"bad-{index}"
        del body["metadata"]["ownerReferences"]
        with pytest.raises(ApiException) as refused:
            await create(kube.api, VS_PATH.format(namespace=kube.namespace), body)
        assert refused.value.status in (400, 422)


def foreign_route(name: str, prefix: str) -> dict[str, Any]:
    return {
        "name": name,
        "match": [{"uri": {"prefix": prefix}}],
        "route": [{"destination": {"host": "legacy.example.svc.cluster.local", "port": {"number": 80}}}],
        "timeout": "3s",
        "retries": {"attempts": 2, "perTryTimeout": "1s"},
    }


async def test_merged_routes_keep_foreign_routes_and_round_trip(kube: NamespacedApi) -> None:
    spec = make_spec(4)
    stale = {
        "name": "modelrollout-retired",
        "match": [{"headers": {"x-retired": {"exact": "yes"}}}],
        "route": [{"destination": {"host": "recommender-v0.example.svc.cluster.local"}}],
    }
    user_routes = [foreign_route("admin", "/admin"), stale, foreign_route("legacy", "/v0")]
    # A VirtualService a person wrote (no ownerReference): only modelrollout-* routes may be touched.
    existing = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": "recommender", "annotations": {"team": "ranking"}},
        "spec": {"hosts": ["recommender.example.svc.cluster.local"], "http": user_routes},
    }
    await create(kube.api, VS_PATH.format(namespace=kube.namespace), existing)

    steps: list[tuple[str | None, dict[str, int], float | None]] = [
        ("v2", {}, 100.0),
        ("v2", {"ios-na": 5, "android": 5, "beta": 5, "web": 5, "default": 5}, None),
        ("v2", {"android": 25}, None),
        (None, {}, None),
    ]
    for candidate, weights, mirror in steps:
        owned = owned_routes(
            spec,
            name=ROLLOUT,
            namespace=kube.namespace,
            stable="v1",
            candidate=candidate,
            weights=weights,
            mirror_percent=mirror,
        )
        live = await get_vs(kube)
        merged = merge_routes(live["spec"]["http"], owned)
        assert not routes_equal(live["spec"]["http"], merged)
        live["spec"]["http"] = merged
        await kube.custom.replace_namespaced_custom_object(
            *ISTIO, kube.namespace, "virtualservices", "recommender", live, field_validation="Strict"
        )

        after = await get_vs(kube)
        http = after["spec"]["http"]
        assert routes_equal(http, merged)
        assert routes_equal(http, merge_routes(http, owned))  # idempotent on what the server stored
        foreign = [foreign_route("admin", "/admin"), foreign_route("legacy", "/v0")]
        assert [r for r in http if not is_owned(r)] == foreign
        assert http[0]["name"] == "admin"
        assert http[1]["name"] == "modelrollout-ios-na"  # where the first owned route was
        assert http[-1]["name"] == "legacy"
        assert "modelrollout-retired" not in [r["name"] for r in http]
        assert observed_weights(http) == {name: weights.get(name, 0) for name in spec.slice_names()}
        assert after["metadata"]["annotations"] == {"team": "ranking"}
        assert "ownerReferences" not in after["metadata"]
