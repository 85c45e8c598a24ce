"""Example-based tests of the Gateway API HTTPRoute rendering, merging, comparison, read-back and ownership."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from modelrollout.errors import InvalidRoutes
from modelrollout.identity import workload_name
from modelrollout.traffic import ownership
from modelrollout.traffic.gatewayapi import (
    desired_http_route,
    merge_rules,
    mirror_percent,
    observed_mirror,
    observed_weights,
    owned_rules,
    read_rules,
    rules_equal,
)
from tests.support.traffic_specs import NAMESPACE, PLATFORM_SLICES, ROLLOUT, make_spec

STABLE_SERVICE = workload_name(ROLLOUT, "v1")
CANDIDATE_SERVICE = workload_name(ROLLOUT, "v2")


def render(
    candidate: str | None = "v2",
    weights: dict[str, int] | None = None,
    mirror: float | None = None,
    slices: list[dict[str, Any]] | None = None,
    **spec_args: Any,
) -> list[dict[str, Any]]:
    return owned_rules(
        make_spec(slices, provider="gatewayapi", **spec_args),
        name=ROLLOUT,
        namespace=NAMESPACE,
        stable="v1",
        candidate=candidate,
        weights=weights or {},
        mirror_percent=mirror,
    )


def foreign(name: str | None) -> dict[str, Any]:
    rule: dict[str, Any] = {
        "matches": [{"path": {"type": "PathPrefix", "value": f"/{name or 'anon'}"}}],
        "backendRefs": [{"name": "legacy", "port": 80}],
    }
    if name is not None:
        rule["name"] = name
    return rule


# Rendering --------------------------------------------------------------------------------------------------
def test_one_rule_per_slice_in_order_then_default() -> None:
    rules = render()
    assert [r["name"] for r in rules] == [
        "modelrollout-ios-na",
        "modelrollout-android",
        "modelrollout-beta",
        "modelrollout-web",
        "modelrollout-default",
    ]


def test_header_matches_are_exact_or_anchored_regular_expressions() -> None:
    by_name = {r["name"]: r["matches"] for r in render()}
    assert by_name["modelrollout-ios-na"] == [
        {
            "path": {"type": "PathPrefix", "value": "/"},
            "headers": [
                {"type": "Exact", "name": "x-platform", "value": "ios"},
                {"type": "Exact", "name": "x-region", "value": "na"},
            ],
        }
    ]
    [beta] = by_name["modelrollout-beta"][0]["headers"]
    assert beta == {"type": "RegularExpression", "name": "x-user", "value": "^beta\\-.*"}
    assert re.fullmatch(beta["value"], "beta-17")
    assert not re.fullmatch(beta["value"], "xbeta-17")
    [web] = by_name["modelrollout-web"][0]["headers"]
    assert web == {"type": "RegularExpression", "name": "user-agent", "value": "^(?:Mozilla/.*)$"}
    # Anchored, a partial-match implementation accepts exactly what a full-match one does.
    assert re.search(web["value"], "Mozilla/5.0")
    assert not re.search(web["value"], "Bot Mozilla/5.0")
    assert by_name["modelrollout-default"] == [{"path": {"type": "PathPrefix", "value": "/"}}]


def test_every_rule_tells_the_backend_its_slice_first() -> None:
    for rule in render(mirror=50):
        header_filter = rule["filters"][0]
        slice_name = rule["name"].removeprefix("modelrollout-")
        assert header_filter == {
            "type": "RequestHeaderModifier",
            "requestHeaderModifier": {"set": [{"name": "x-modelrollout-slice", "value": slice_name}]},
        }


def test_weights_name_the_candidate_only_while_it_takes_traffic() -> None:
    rules = {r["name"]: r for r in render(weights={"android": 25, "default": 100}, port=9000)}
    stable = {"group": "", "kind": "Service", "name": STABLE_SERVICE, "port": 9000}
    candidate = {"group": "", "kind": "Service", "name": CANDIDATE_SERVICE, "port": 9000}
    assert rules["modelrollout-android"]["backendRefs"] == [
        {**stable, "weight": 75},
        {**candidate, "weight": 25},
    ]
    assert rules["modelrollout-ios-na"]["backendRefs"] == [{**stable, "weight": 100}]
    assert rules["modelrollout-default"]["backendRefs"] == [
        {**stable, "weight": 0},
        {**candidate, "weight": 100},
    ]


def test_shadow_mirrors_every_rule_to_the_candidate_with_the_share() -> None:
    for rule in render(mirror=100):
        assert rule["filters"][1] == {
            "type": "RequestMirror",
            "requestMirror": {
                "backendRef": {"group": "", "kind": "Service", "name": CANDIDATE_SERVICE, "port": 8080},
                "percent": 100,
            },
        }
    fractional = render(mirror=12.5)[0]["filters"][1]["requestMirror"]
    assert fractional["fraction"] == {"numerator": 125000, "denominator": 1_000_000}
    assert "percent" not in fractional
    assert mirror_percent(fractional) == 12.5
    assert all(len(rule["filters"]) == 1 for rule in render(mirror=None))


@pytest.mark.parametrize(
    ("candidate", "weights", "mirror", "error"),
    [
        ("v2", {"android": 101}, None, "must be an integer from 0 to 100"),
        ("v2", {"android": -1}, None, "must be an integer from 0 to 100"),
        (None, {"android": 5}, None, "no candidate version"),
        (None, {}, 50, "cannot mirror without a candidate"),
        ("v2", {}, 150, r"mirror percent must be in \(0, 100\]"),
    ],
)
def test_impossible_routes_are_refused(
    candidate: str | None, weights: dict[str, int], mirror: float | None, error: str
) -> None:
    with pytest.raises(InvalidRoutes, match=error):
        render(candidate=candidate, weights=weights, mirror=mirror)


def test_desired_http_route_is_owned_and_attached_to_the_parents() -> None:
    spec = make_spec(provider="gatewayapi")
    rules = render()
    route = desired_http_route(spec, name=ROLLOUT, namespace=NAMESPACE, uid="uid-1", rules=rules)
    assert (route["apiVersion"], route["kind"]) == ("gateway.networking.k8s.io/v1", "HTTPRoute")
    assert route["metadata"]["name"] == "recommender"
    assert route["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    assert route["spec"]["parentRefs"] == [{"group": "", "kind": "Service", "name": "recommender"}]
    assert "hostnames" not in route["spec"]
    assert route["spec"]["rules"] == rules


# Merging, comparing, reading back ------------------------------------------------------------------------------
def test_merge_keeps_foreign_rules_and_replaces_ours_as_one_block() -> None:
    owned = render(weights={"android": 25})
    live = [foreign("api"), *render(), foreign(None)]
    merged = merge_rules(live, owned)
    assert merged == [foreign("api"), *owned, foreign(None)]
    assert merge_rules(merged, owned) == merged


def _as_stored(rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What the API server returns for rules written without the fields it defaults."""
    stored = copy.deepcopy(rules)
    for rule in stored:
        for match in rule["matches"]:
            for header in match.get("headers", []):
                if header["type"] == "Exact":
                    header.pop("type")
            match.pop("path")
        for backend in rule["backendRefs"]:
            backend.pop("group"), backend.pop("kind")
    return stored


def test_rules_equal_sees_through_the_servers_defaults_but_not_a_change() -> None:
    desired = render(weights={"android": 25}, mirror=10)
    assert rules_equal(_as_stored(desired), desired)
    assert not rules_equal(render(weights={"android": 26}, mirror=10), desired)
    assert not rules_equal(render(weights={"android": 25}), desired)
    assert not rules_equal(list(reversed(desired)), desired)
    changed = copy.deepcopy(desired)
    changed[0]["backendRefs"][0].pop("weight")  # the server's default weight is 1, not 100
    assert not rules_equal(changed, desired)


def test_observed_weights_and_mirror_round_trip() -> None:
    weights = {"ios-na": 5, "android": 25, "beta": 0, "web": 50, "default": 100}
    live = [foreign("api"), *render(weights=weights, mirror=12.5)]
    assert observed_weights(live) == weights
    assert observed_weights(live, CANDIDATE_SERVICE) == weights
    assert observed_mirror(live) == dict.fromkeys(weights, 12.5)
    assert observed_mirror(live, STABLE_SERVICE) == dict.fromkeys(weights, 0.0)
    [ios] = [r for r in read_rules(live) if r.slice == "ios-na"]
    assert ios.headers == {"x-platform": {"exact": "ios"}, "x-region": {"exact": "na"}}


def test_mirror_shares_read_as_the_specification_says() -> None:
    assert mirror_percent({"backendRef": {"name": "x"}}) == 100.0
    assert mirror_percent({"percent": 30}) == 30.0
    assert mirror_percent({"fraction": {"numerator": 1}}) == 1.0  # denominator defaults to 100
    assert mirror_percent({"fraction": {"numerator": 1, "denominator": 3}}) == pytest.approx(100 / 3)


# Ownership ---------------------------------------------------------------------------------------------------
def decide(live: dict[str, Any] | None, rules: list[dict[str, Any]]) -> ownership.Decision:
    spec = make_spec(provider="gatewayapi")
    return ownership.decide(live, spec, rollout=ROLLOUT, namespace=NAMESPACE, uid="u", routes=rules)


def test_ownership_creates_patches_leaves_alone_and_refuses_http_routes() -> None:
    rules = render(weights={"android": 25})
    created = decide(None, rules)
    assert isinstance(created, ownership.Create)
    assert created.body["kind"] == "HTTPRoute"
    assert created.body["metadata"]["annotations"] == {"modelrollout.io/rollout": ROLLOUT}

    live = copy.deepcopy(created.body)
    live["spec"]["rules"] = [foreign("api"), *_as_stored(rules)]
    assert isinstance(decide(live, rules), ownership.Unchanged)

    patched = decide(live, render(weights={}))
    assert isinstance(patched, ownership.Patch)
    assert patched.patch["spec"]["rules"][0] == foreign("api")
    assert [r["name"] for r in patched.patch["spec"]["rules"][1:]] == [r["name"] for r in rules]

    live["metadata"]["annotations"] = {"modelrollout.io/rollout": "another"}
    refused = decide(live, rules)
    assert isinstance(refused, ownership.Refused)
    assert "HTTPRoute ml/recommender" in str(refused.error)
    assert "one HTTPRoute serves one rollout" in str(refused.error)


def test_the_platform_slices_already_list_more_headers_first() -> None:
    counts = [len(s["match"]["headers"]) for s in PLATFORM_SLICES]
    assert counts == sorted(counts, reverse=True)
