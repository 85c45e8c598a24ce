"""Rendered HTTPRoutes against the real API server with Gateway API's HTTPRoute CRD (v1.6.3, standard channel):
its schema and CEL rules are the upstream validation every rule the operator writes must pass."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

import pytest
from kubernetes.aio.client import ApiException

from modelrollout.identity import workload_name
from modelrollout.traffic import ownership
from modelrollout.traffic.gatewayapi import (
    desired_http_route,
    merge_rules,
    observed_mirror,
    observed_weights,
    owned_rules,
    rules_equal,
)

from .helpers import GATEWAY, ROLLOUT, create, create_rollout, make_spec

if TYPE_CHECKING:
    from tests.conftest import NamespacedApi

pytestmark = pytest.mark.integration

ROUTES_PATH = "/apis/gateway.networking.k8s.io/v1/namespaces/{namespace}/httproutes"

# (candidate, weights, mirror percent): before a rollout, shadow, canary steps, full promotion.
STATES: dict[str, tuple[str | None, dict[str, int], float | None]] = {
    "stable-only": (None, {}, None),
    "shadow": ("v2", {}, 100.0),
    "partial-shadow": ("v2.0.1", {}, 12.5),
    "canary": ("v2", {"ios-na": 5, "android": 25, "beta": 50, "web": 1, "default": 5}, None),
    "promoted": ("v2", {"ios-na": 100, "android": 100, "beta": 100, "web": 100, "default": 100}, None),
}


async def get_route(kube: NamespacedApi, name: str = "recommender") -> dict[str, Any]:
    found: Any = await kube.custom.get_namespaced_custom_object(*GATEWAY, kube.namespace, "httproutes", name)
    assert isinstance(found, dict)
    return found


def render(
    spec: Any, namespace: str, candidate: str | None, weights: dict[str, int], mirror: float | None
) -> Any:
    return owned_rules(
        spec,
        name=ROLLOUT,
        namespace=namespace,
        stable="v1",
        candidate=candidate,
        weights=weights,
        mirror_percent=mirror,
    )


@pytest.mark.parametrize("slice_count", [0, 4])
@pytest.mark.parametrize("state", list(STATES))
async def test_rendered_http_route_is_accepted_and_round_trips(
    kube: NamespacedApi, slice_count: int, state: str
) -> None:
    candidate, weights, mirror = STATES[state]
    spec = make_spec(slice_count, provider="gatewayapi")
    uid = await create_rollout(kube.custom, kube.namespace, spec)
    rules = render(spec, kube.namespace, candidate, weights, mirror)
    body = desired_http_route(spec, name=ROLLOUT, namespace=kube.namespace, uid=uid, rules=rules)
    await create(kube.api, ROUTES_PATH.format(namespace=kube.namespace), body)

    live = await get_route(kube)
    assert live["metadata"]["ownerReferences"][0]["uid"] == uid
    assert live["spec"]["parentRefs"] == [{"group": "", "kind": "Service", "name": "recommender"}]
    assert live["spec"]["rules"] == rules, "the server changed a rule: a default was not written explicitly"
    assert rules_equal(live["spec"]["rules"], rules)
    expected_weights = {name: weights.get(name, 0) for name in spec.slice_names()}
    candidate_service = workload_name(ROLLOUT, candidate) if candidate else None
    assert observed_weights(live["spec"]["rules"]) == expected_weights
    assert observed_weights(live["spec"]["rules"], candidate_service) == expected_weights
    assert set(observed_mirror(live["spec"]["rules"]).values()) == {mirror or 0.0}
    # Decided again on what the server returned, nothing is written: a steady step costs no API write.
    live.setdefault("metadata", {}).setdefault("annotations", {})["modelrollout.io/rollout"] = ROLLOUT
    decision = ownership.decide(live, spec, rollout=ROLLOUT, namespace=kube.namespace, uid=uid, routes=rules)
    assert isinstance(decision, ownership.Unchanged)


async def test_the_crd_schema_and_cel_rules_are_enforced(kube: NamespacedApi) -> None:
    """Guards the test above: the server must refuse rules Gateway API's schema or CEL rules do not allow."""
    spec = make_spec(1, provider="gatewayapi")
    rules = render(spec, kube.namespace, "v2", {"default": 10}, 50)
    prefix_header = copy.deepcopy(rules)
    prefix_header[0]["matches"][0]["headers"][0]["type"] = "Prefix"  # Gateway API has no header prefix
    negative_weight = copy.deepcopy(rules)
    negative_weight[-1]["backendRefs"][1]["weight"] = -10
    percent_and_fraction = copy.deepcopy(rules)
    percent_and_fraction[0]["filters"][1]["requestMirror"]["fraction"] = {"numerator": 1}  # CEL: not both
    mirror_over_100 = copy.deepcopy(rules)
    mirror_over_100[0]["filters"][1]["requestMirror"]["percent"] = 150
    two_header_filters = copy.deepcopy(rules)
    two_header_filters[0]["filters"].append(copy.deepcopy(rules[0]["filters"][0]))  # CEL: at most one
    service_without_port = copy.deepcopy(rules)
    del service_without_port[0]["backendRefs"][0]["port"]  # CEL: a Service backend needs a port
    seventeen_rules = [{**copy.deepcopy(rules[-1]), "name": f"r{i}"} for i in range(17)]
    unknown_field = copy.deepcopy(rules)
    unknown_field[0]["filter"] = []
    cases = {
        "prefix-header": (prefix_header, "Unsupported value"),
        "negative-weight": (negative_weight, "greater than or equal to 0"),
        "percent-and-fraction": (percent_and_fraction, "percent"),
        "mirror-over-100": (mirror_over_100, "less than or equal to 100"),
        "two-header-filters": (two_header_filters, "RequestHeaderModifier"),
        "service-without-port": (service_without_port, "port"),
        "seventeen-rules": (seventeen_rules, "16"),
        "unknown-field": (unknown_field, "spec.rules[0].filter"),
    }
    for index, (name, (bad, words)) in enumerate(cases.items()):
        body = desired_http_route(spec, name=ROLLOUT, namespace=kube.namespace, uid="u", rules=bad)
        body["metadata"]["name"] = f"bad-{index}"
        del body["metadata"]["ownerReferences"]
        with pytest.raises(ApiException) as refused:
            await create(kube.api, ROUTES_PATH.format(namespace=kube.namespace), body)
        assert refused.value.status in (400, 422), name
        assert words in (refused.value.body or ""), f"{name}: {refused.value.body}"


def foreign_rule(name: str | None, prefix: str) -> dict[str, Any]:
    rule: dict[str, Any] = {
        "matches": [{"path": {"type": "PathPrefix", "value": prefix}}],
        "backendRefs": [{"name": "legacy", "port": 80}],
        "timeouts": {"request": "3s"},
    }
    if name is not None:
        rule["name"] = name
    return rule


async def test_merged_rules_keep_foreign_rules_and_round_trip(kube: NamespacedApi) -> None:
    """An HTTPRoute someone else wrote (as Git holds it): only modelrollout-* rules may change."""
    spec = make_spec(4, provider="gatewayapi")
    stale = {**render(spec, kube.namespace, None, {}, None)[0], "name": "modelrollout-retired"}
    body = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "recommender"},
        "spec": {
            "parentRefs": [{"name": "public-gateway"}],
            "rules": [foreign_rule("api", "/api"), stale, foreign_rule(None, "/health")],
        },
    }
    await create(kube.api, ROUTES_PATH.format(namespace=kube.namespace), body)
    live = await get_route(kube)
    owned = render(spec, kube.namespace, "v2", {"android": 25}, None)
    merged = merge_rules(live["spec"]["rules"], owned)
    assert not rules_equal(live["spec"]["rules"], merged)
    await kube.custom.patch_namespaced_custom_object(
        *GATEWAY,
        kube.namespace,
        "httproutes",
        "recommender",
        {"metadata": {"resourceVersion": live["metadata"]["resourceVersion"]}, "spec": {"rules": merged}},
        _content_type="application/merge-patch+json",
    )
    stored = (await get_route(kube))["spec"]["rules"]
    assert rules_equal(stored, merged)
    assert [r.get("name") for r in stored] == ["api", *[r["name"] for r in owned], None]
    assert stored[0] == live["spec"]["rules"][0], "a foreign rule changed"
    assert stored[-1] == live["spec"]["rules"][2], "a foreign rule changed"
    assert observed_weights(stored) == {name: 25 if name == "android" else 0 for name in spec.slice_names()}
