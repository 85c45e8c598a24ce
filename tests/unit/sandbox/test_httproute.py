"""Route selection on a fixed HTTPRoute, by Gateway API's rules: precedence by match, filters in order, weights."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest

from modelrollout.identity import workload_name
from modelrollout.sandbox.httproute import HTTPRouteTable
from modelrollout.sandbox.trafficgen import routing_table
from modelrollout.traffic.gatewayapi import owned_rules
from tests.support.traffic_specs import NAMESPACE, ROLLOUT, make_spec


def rule(
    name: str,
    headers: dict[str, str] | None = None,
    *,
    backends: dict[str, int] | None = None,
    path: tuple[str, str] | None = None,
    method: str | None = None,
    regex: dict[str, str] | None = None,
    filters: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    match: dict[str, Any] = {}
    if path is not None:
        match["path"] = {"type": path[0], "value": path[1]}
    conditions = [{"name": k, "value": v} for k, v in (headers or {}).items()]
    conditions += [{"type": "RegularExpression", "name": k, "value": v} for k, v in (regex or {}).items()]
    if conditions:
        match["headers"] = conditions
    if method is not None:
        match["method"] = method
    out: dict[str, Any] = {
        "name": name,
        "backendRefs": [
            {"name": b, "port": 80, "weight": w}
            for b, w in ({name: 1} if backends is None else backends).items()
        ],
    }
    if match:
        out["matches"] = [match]
    if filters is not None:
        out["filters"] = filters
    return out


def table(*rules: dict[str, Any]) -> HTTPRouteTable:
    return HTTPRouteTable.from_http_route({"kind": "HTTPRoute", "spec": {"rules": list(rules)}})


def chosen(t: HTTPRouteTable, headers: dict[str, str], **request: Any) -> str | None:
    return t.route(headers, random.Random(0), **request).route


def test_more_header_matches_win_over_an_earlier_rule() -> None:
    t = table(rule("ios", {"x-platform": "ios"}), rule("ios-beta", {"x-platform": "ios", "x-beta": "1"}))
    assert chosen(t, {"x-platform": "ios", "x-beta": "1"}) == "ios-beta"  # Istio's first match: "ios"
    assert chosen(t, {"x-platform": "ios"}) == "ios"


def test_ties_go_to_the_first_rule_in_list_order() -> None:
    t = table(rule("first", {"x-a": "1"}), rule("second", {"x-b": "1"}))
    assert chosen(t, {"x-a": "1", "x-b": "1"}) == "first"


def test_path_precedence_comes_before_headers() -> None:
    t = table(
        rule("headers", {"x-a": "1", "x-b": "2"}),
        rule("long-prefix", path=("PathPrefix", "/predict")),
        rule("exact", path=("Exact", "/predict")),
        rule("method", {"x-a": "1"}, method="POST"),
    )
    assert chosen(t, {"x-a": "1", "x-b": "2"}, path="/predict") == "exact"
    assert chosen(t, {"x-a": "1", "x-b": "2"}, path="/predict/batch") == "long-prefix"
    assert chosen(t, {"x-a": "1", "x-b": "2"}, path="/other") == "method"
    assert chosen(t, {"x-a": "1", "x-b": "2"}, path="/other", method="GET") == "headers"


def test_path_prefix_matches_whole_elements() -> None:
    t = table(rule("api", path=("PathPrefix", "/api/")))
    assert chosen(t, {}, path="/api") == "api"
    assert chosen(t, {}, path="/api/v1") == "api"
    assert chosen(t, {}, path="/apis") is None, "no rule matches: 404"


def test_header_matches_exact_case_sensitive_values_and_full_regular_expressions() -> None:
    t = table(rule("exact", {"X-Platform": "ios"}), rule("regex", regex={"x-user": "beta-[0-9]+"}))
    assert chosen(t, {"x-platform": "ios"}) == "exact"  # names compare case-insensitively
    assert chosen(t, {"x-platform": "IOS"}) is None  # values do not
    assert chosen(t, {"x-user": "beta-42"}) == "regex"
    assert chosen(t, {"x-user": "beta-42x"}) is None, "a RegularExpression must match the whole value"
    assert chosen(t, {"x-user": "xbeta-42"}) is None


def test_query_parameters_count_after_headers() -> None:
    with_query = rule("query", {"x-a": "1"})
    with_query["matches"][0]["queryParams"] = [{"name": "debug", "value": "1"}]
    t = table(rule("plain", {"x-a": "1"}), with_query)
    assert chosen(t, {"x-a": "1"}, path="/predict?debug=1") == "query"
    assert chosen(t, {"x-a": "1"}, path="/predict") == "plain"


def test_weights_split_by_share_and_zero_takes_nothing() -> None:
    t = table(rule("r", backends={"stable": 75, "candidate": 25, "off": 0}))
    rng = random.Random(3)
    counts = Counter(t.route({}, rng).destination for _ in range(4000))
    assert counts["off"] == 0
    assert 0.22 < counts["candidate"] / 4000 < 0.28


def test_a_lone_backend_of_weight_zero_or_no_backend_is_no_destination() -> None:
    # Unlike an Istio route, where a lone destination takes everything whatever its weight says.
    t = table(rule("zero", {"x-a": "1"}, backends={"only": 0}), rule("none", backends={}))
    assert t.route({"x-a": "1"}, random.Random(0)).destination is None
    decision = t.route({}, random.Random(0))
    assert (decision.route, decision.destination) == ("none", None)


def test_filters_apply_in_order_and_a_mirror_copies_the_headers_set_before_it() -> None:
    set_slice = {
        "type": "RequestHeaderModifier",
        "requestHeaderModifier": {"set": [{"name": "x-slice", "value": "a"}]},
    }
    mirror = {"type": "RequestMirror", "requestMirror": {"backendRef": {"name": "shadow", "port": 80}}}
    remove = {"type": "RequestHeaderModifier", "requestHeaderModifier": {"remove": ["x-secret"]}}
    t = table(
        rule("r", filters=[set_slice, mirror]), rule("late", {"x-late": "1"}, filters=[mirror, set_slice])
    )
    early = t.route({"x-secret": "s"}, random.Random(0))
    assert early.mirrors == ("shadow",)
    assert early.headers == {"x-slice": "a"}
    assert early.mirror_headers[0] == {"x-secret": "s", "x-slice": "a"}
    late = t.route({"x-late": "1"}, random.Random(0))
    assert late.mirror_headers[0] == {"x-late": "1"}, "a mirror before the modifier copies the original"
    removing = table(rule("r", filters=[remove])).route({"x-secret": "s"}, random.Random(0))
    assert removing.removed == frozenset({"x-secret"})


@pytest.mark.parametrize(
    ("share", "expected"),
    [({"percent": 20}, 0.2), ({"fraction": {"numerator": 1, "denominator": 10}}, 0.1), ({}, 1.0)],
)
def test_mirror_shares(share: dict[str, Any], expected: float) -> None:
    mirror = {
        "type": "RequestMirror",
        "requestMirror": {"backendRef": {"name": "shadow", "port": 80}, **share},
    }
    t = table(rule("r", filters=[mirror]))
    rng = random.Random(5)
    copies = sum(bool(t.route({}, rng).mirrors) for _ in range(4000))
    assert abs(copies / 4000 - expected) < 0.03


def test_the_operators_rules_put_every_request_in_its_declared_slice() -> None:
    """The rendered rules under Gateway API precedence give each slice's requests to that slice's rule."""
    spec = make_spec(provider="gatewayapi")
    rules = owned_rules(
        spec,
        name=ROLLOUT,
        namespace=NAMESPACE,
        stable="v1",
        candidate="v2",
        weights={"android": 100},
        mirror_percent=50,
    )
    t = routing_table({"kind": "HTTPRoute", "spec": {"rules": rules}})
    requests = {
        "ios-na": {"x-platform": "ios", "x-region": "na", "x-user": "beta-1"},
        "android": {"x-platform": "android", "x-user": "beta-1"},
        "beta": {"x-user": "beta-7", "user-agent": "Mozilla/5.0"},
        "web": {"user-agent": "Mozilla/5.0"},
        "default": {"x-platform": "ios"},
    }
    for slice_name, headers in requests.items():
        decision = t.route(headers, random.Random(1))
        assert decision.route == f"modelrollout-{slice_name}"
        assert decision.headers == {"x-modelrollout-slice": slice_name}
    android = t.route(requests["android"], random.Random(1))
    assert android.destination == workload_name(ROLLOUT, "v2")
    assert t.hosts == {workload_name(ROLLOUT, "v1"), workload_name(ROLLOUT, "v2")}
