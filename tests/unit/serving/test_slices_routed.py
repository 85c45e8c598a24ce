"""The slice a route already decided (x-modelrollout-slice, set by the operator's routes) wins."""

from __future__ import annotations

from modelrollout.serving.slices import SliceClassifier

SLICES = '[{"name": "ios", "match": {"headers": {"x-platform": {"exact": "ios"}}}}]'


def test_the_routed_slice_header_wins_over_local_matching() -> None:
    classifier = SliceClassifier.from_json(SLICES)
    assert classifier.classify({"x-platform": "ios"}) == "ios"
    assert classifier.classify({"x-platform": "ios", "X-Modelrollout-Slice": "default"}) == "default"
    assert classifier.classify({"x-modelrollout-slice": "ios"}) == "ios"


def test_an_unknown_routed_slice_falls_back_to_matching() -> None:
    classifier = SliceClassifier.from_json(SLICES)
    assert classifier.classify({"x-platform": "ios", "x-modelrollout-slice": "nonsense"}) == "ios"
