"""Property tests of route rendering and merging over random slices, weights, requests and live routes."""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from modelrollout.api.spec import ModelRolloutSpec, Slice
from modelrollout.traffic.istio import (
    is_owned,
    merge_routes,
    observed_mirror,
    observed_weights,
    owned_routes,
    route_name,
    routes_equal,
)
from tests.support.traffic_specs import NAMESPACE, ROLLOUT, make_spec

HEADERS = ["x-platform", "x-region", "x-tier"]
VALUES = ["", "a", "b", "ab", "ba", "abc"]
REGEXES = ["a.*", "[ab]+", "b|c", ".*c", "a?"]

slice_names = st.from_regex(r"[a-z][a-z0-9]{0,5}", fullmatch=True).filter(lambda n: n != "default")
string_matches = st.one_of(
    st.builds(lambda v: {"exact": v}, st.sampled_from(VALUES)),
    st.builds(lambda v: {"prefix": v}, st.sampled_from(VALUES)),
    st.builds(lambda v: {"regex": v}, st.sampled_from(REGEXES)),
)
header_matches = st.dictionaries(st.sampled_from(HEADERS), string_matches, min_size=1, max_size=len(HEADERS))


@st.composite
def specs(draw: st.DrawFn) -> ModelRolloutSpec:
    names = draw(st.lists(slice_names, unique=True, max_size=6))
    return make_spec([{"name": n, "match": {"headers": draw(header_matches)}} for n in names])


@dataclass(frozen=True)
class Case:
    spec: ModelRolloutSpec
    candidate: str | None
    weights: dict[str, int]
    mirror: float | None

    def render(self) -> list[dict[str, Any]]:
        return owned_routes(
            self.spec,
            name=ROLLOUT,
            namespace=NAMESPACE,
            stable="v1",
            candidate=self.candidate,
            weights=self.weights,
            mirror_percent=self.mirror,
        )


@st.composite
def cases(draw: st.DrawFn) -> Case:
    spec = draw(specs())
    candidate = draw(st.sampled_from([None, "v2", "v2.1-rc"]))
    if candidate is None:
        return Case(spec, None, {}, None)
    weights = draw(st.dictionaries(st.sampled_from(spec.slice_names()), st.integers(0, 100)))
    mirror = draw(st.none() | st.floats(min_value=0.01, max_value=100))
    return Case(spec, candidate, weights, mirror)


requests = st.dictionaries(st.sampled_from(HEADERS), st.sampled_from([*VALUES, "c", "bc", "abcc"]))


# An Istio matcher written against the rendered dicts, independent of the spec models.
def istio_value_matches(condition: dict[str, str], value: str | None) -> bool:
    if value is None:
        return False
    if "exact" in condition:
        return value == condition["exact"]
    if "prefix" in condition:
        return value.startswith(condition["prefix"])
    return re.fullmatch(condition["regex"], value) is not None


def istio_route_matches(route: dict[str, Any], request: dict[str, str]) -> bool:
    blocks = route.get("match")
    if not blocks:
        return True
    return any(
        all(istio_value_matches(cond, request.get(header)) for header, cond in block["headers"].items())
        for block in blocks
    )


def slice_matches(slice_: Slice, request: dict[str, str]) -> bool:
    for header, match in slice_.match.headers.items():
        value = request.get(header)
        if value is None:
            return False
        if match.exact is not None and value != match.exact:
            return False
        if match.prefix is not None and not value.startswith(match.prefix):
            return False
        if match.regex is not None and not re.fullmatch(match.regex, value):
            return False
    return True


@given(cases())
def test_weights_sum_to_100_on_every_route(case: Case) -> None:
    for route in case.render():
        weights = [d["weight"] for d in route["route"]]
        assert all(isinstance(w, int) and 0 <= w <= 100 for w in weights)
        assert sum(weights) == 100


@given(cases())
def test_route_order_is_slice_order_then_default(case: Case) -> None:
    routes = case.render()
    assert [r["name"] for r in routes] == [route_name(n) for n in case.spec.slice_names()]
    assert all("match" in r for r in routes[:-1])
    assert "match" not in routes[-1]


@given(cases(), requests)
def test_first_match_semantics_are_preserved(case: Case, request: dict[str, str]) -> None:
    taken = next(r["name"] for r in case.render() if istio_route_matches(r, request))
    expected = next((s.name for s in case.spec.slices if slice_matches(s, request)), "default")
    assert taken == route_name(expected)


@given(cases())
def test_weights_and_mirror_read_back_as_rendered(case: Case) -> None:
    routes = case.render()
    assert observed_weights(routes) == {name: case.weights.get(name, 0) for name in case.spec.slice_names()}
    assert set(observed_mirror(routes).values()) == {case.mirror or 0.0}


@given(cases())
def test_rendering_twice_gives_equal_output(case: Case) -> None:
    before = case.spec.model_dump()
    first = case.render()
    assert case.render() == first
    assert routes_equal(case.render(), first)
    assert case.spec.model_dump() == before


foreign_routes = st.builds(
    lambda n, p: {
        "name": f"user-{n}",
        "match": [{"uri": {"prefix": f"/{p}"}}],
        "route": [{"destination": {"host": p}}],
    },
    st.integers(0, 1000),
    st.sampled_from(["a", "b", "c"]),
)
stale_routes = st.builds(
    lambda n: {"name": route_name(n), "route": [{"destination": {"host": "old"}, "weight": 100}]}, slice_names
)


@settings(max_examples=200)
@given(st.lists(st.one_of(foreign_routes, stale_routes), max_size=10), cases(), cases())
def test_merge_keeps_foreign_routes_in_place_and_is_idempotent(
    live: list[dict[str, Any]], first: Case, second: Case
) -> None:
    before = copy.deepcopy(live)
    owned = first.render()
    merged = merge_routes(live, owned)
    assert live == before

    foreign = [r for r in live if not is_owned(r)]
    assert [r for r in merged if not is_owned(r)] == foreign
    owned_positions = [i for i, r in enumerate(merged) if is_owned(r)]
    start = owned_positions[0]
    assert owned_positions == list(range(start, start + len(owned)))
    assert merged[start : start + len(owned)] == owned
    first_owned = next((i for i, r in enumerate(live) if is_owned(r)), len(live))
    assert start == sum(1 for r in live[:first_owned] if not is_owned(r))

    assert merge_routes(merged, owned) == merged
    assert routes_equal(merge_routes(merged, owned), merged)
    # Moving to other routes and back lands on the same list: nothing accumulates.
    assert merge_routes(merge_routes(merged, second.render()), owned) == merged
