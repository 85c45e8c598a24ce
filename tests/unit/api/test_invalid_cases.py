"""The invalid-manifest catalogue against the pydantic models: each case is refused, naming the field."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from modelrollout.api.spec import ModelRolloutSpec
from modelrollout.api.validation import lint_spec
from tests.support.invalid_cases import CASES, EDGES, VALID, Invalid, edited, lint_path


def split(line: str) -> tuple[str, str]:
    path, _, message = line.partition(": ")
    return path, message


def test_the_catalogue_is_large_and_each_case_is_named_once() -> None:
    assert len(CASES) >= 30
    ids = [case.id for case in CASES]
    assert len(ids) == len(set(ids)), "case ids must be unique"


def test_the_base_spec_is_valid() -> None:
    assert lint_spec(VALID) == []


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_lint_refuses_the_case_and_names_the_field(case: Invalid) -> None:
    lines = lint_spec(case.spec)
    expected = lint_path(case.path)
    naming = [message for path, message in map(split, lines) if path == expected]
    assert naming, f"no line names {expected}: {lines}"
    if case.rule is not None:
        assert case.rule in naming, f"the rule message {case.rule!r} is missing: {lines}"
    with pytest.raises(ValidationError):
        ModelRolloutSpec.model_validate(case.spec)


@pytest.mark.parametrize("name", list(EDGES))
def test_lint_accepts_what_admission_accepts(name: str) -> None:
    assert lint_spec(EDGES[name]) == []


def test_null_means_absent_as_in_the_api_server() -> None:
    spec = ModelRolloutSpec.model_validate(EDGES["nulls-mean-absent"])
    assert spec.strategy.shadow is None
    assert spec.readiness.model_ready_path == "/ready"
    assert spec.gates == []
    assert spec.analysis.guards[0].slices == {}
    assert list(spec.slices[0].match.headers) == ["x-platform"]


@pytest.mark.parametrize(
    ("where", "value"),
    [
        ("replicas", "4"),
        ("replicas", 4.5),
        ("replicas", True),
        ("analysis.guards[0].immediate", "true"),
        ("analysis.guards[0].immediate", 1),
        ("analysis.guards[0].max", "0.05"),
        ("strategy.shadow.mirrorPercent", False),
        ("model.schema.features[0].required", "no"),
    ],
)
def test_values_are_not_coerced_to_the_declared_type(where: str, value: Any) -> None:
    lines = lint_spec(edited((where, value)))
    assert any(split(line)[0] == lint_path("spec." + where) for line in lines), lines


@pytest.mark.parametrize(
    "url",
    ["http://prometheus\u2003.monitoring:9090", "http://prometheus.monitoring:9090/\u00e9", "http:// x"],
)
def test_urls_are_visible_ascii(url: str) -> None:
    assert lint_spec(edited(("analysis.prometheus.url", url))) == [
        "spec.analysis.prometheus.url: String should match pattern '^https?://[!-~]+$'"
    ]


def test_lint_path_turns_bracketed_map_keys_into_dotted_ones() -> None:
    assert lint_path("spec.slices[0].match.headers[x-platform]") == "spec.slices[0].match.headers.x-platform"
    assert lint_path("spec.analysis.guards[10].slices[ios-na]") == "spec.analysis.guards[10].slices.ios-na"
