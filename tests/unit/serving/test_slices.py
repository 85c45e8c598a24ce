"""Slice assignment of requests: the same rules as the operator's Istio routes."""

from __future__ import annotations

import json

import pytest

from modelrollout.api.spec import Slice
from modelrollout.serving.slices import (
    DEFAULT_SLICE,
    SliceClassifier,
    SliceConfigError,
    parse_slices,
    value_matches,
)


def _slice(name: str, **headers: dict[str, str]) -> dict[str, object]:
    return {"name": name, "match": {"headers": {k.replace("_", "-"): v for k, v in headers.items()}}}


SLICES = [
    _slice("ios-na", x_platform={"exact": "ios"}, x_region={"exact": "na"}),
    _slice("ios", x_platform={"exact": "ios"}),
    _slice("beta", x_app_version={"prefix": "9."}),
    _slice("web", x_platform={"regex": "(chrome|firefox)-[0-9]+"}),
]


@pytest.fixture
def classifier() -> SliceClassifier:
    return SliceClassifier.from_json(json.dumps(SLICES))


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"x-platform": "ios", "x-region": "na"}, "ios-na"),  # all headers of the first slice match
        ({"x-platform": "ios", "x-region": "eu"}, "ios"),  # ios-na needs both; next slice wins
        ({"x-platform": "ios"}, "ios"),
        ({"X-Platform": "ios", "X-REGION": "na"}, "ios-na"),  # header names are case-insensitive
        ({"x-platform": "IOS"}, DEFAULT_SLICE),  # values are not
        ({"x-app-version": "9.1.0"}, "beta"),
        ({"x-app-version": "19.1"}, DEFAULT_SLICE),  # a prefix anchors at the start
        ({"x-platform": "chrome-120"}, "web"),
        ({"x-platform": "chrome-120-beta"}, DEFAULT_SLICE),  # a regex must match the whole value
        ({"x-platform": "android"}, DEFAULT_SLICE),
        ({}, DEFAULT_SLICE),
    ],
)
def test_requests_land_in_the_first_matching_slice(
    classifier: SliceClassifier, headers: dict[str, str], expected: str
) -> None:
    assert classifier.classify(headers) == expected


def test_first_match_wins_when_slices_overlap() -> None:
    overlapping = SliceClassifier(
        [Slice.model_validate(_slice("ios", x_platform={"exact": "ios"})), Slice.model_validate(SLICES[0])]
    )
    # ios-na requests also match the broader ios slice declared before it.
    assert overlapping.classify({"x-platform": "ios", "x-region": "na"}) == "ios"


def test_names_are_in_route_order_and_end_with_default(classifier: SliceClassifier) -> None:
    assert classifier.names == ["ios-na", "ios", "beta", "web", DEFAULT_SLICE]


def test_no_slices_means_everything_is_default() -> None:
    assert SliceClassifier.from_json(None).classify({"x-platform": "ios"}) == DEFAULT_SLICE
    assert SliceClassifier.from_json("  ").names == [DEFAULT_SLICE]


def test_repeated_headers_use_the_first_value() -> None:
    classifier = SliceClassifier.from_json(json.dumps(SLICES))
    assert classifier.classify([("x-platform", "ios"), ("X-Platform", "android")]) == "ios"


def test_presence_match_and_missing_header() -> None:
    assert value_matches({}, "anything")
    assert not value_matches({}, None)
    assert not value_matches({"exact": ""}, None)
    assert value_matches({"exact": ""}, "")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("{", "MODELROLLOUT_SLICES: (top level): Invalid JSON"),
        ('[{"name": "Bad", "match": {"headers": {"x": {"exact": "1"}}}}]', "MODELROLLOUT_SLICES: 0.name"),
        ('[{"name": "a", "match": {"headers": {"x": {}}}}]', "exactly one of exact, prefix or regex"),
        ('[{"name": "a", "match": {"headers": {"X-Upper": {"exact": "1"}}}}]', "lowercase"),
        (
            '[{"name": "default", "match": {"headers": {"x": {"exact": "1"}}}}]',
            "0: name: 'default' is the implicit slice",
        ),
        (json.dumps([SLICES[1], SLICES[1]]), "unique"),
    ],
)
def test_invalid_slice_definitions_are_refused_with_the_field(text: str, fragment: str) -> None:
    with pytest.raises(SliceConfigError) as raised:
        parse_slices(text)
    assert fragment in str(raised.value)
