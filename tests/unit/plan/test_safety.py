"""Tests of rollback safety: can stable serve requests shaped for the candidate?"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelrollout.api.spec import ServingSchema
from modelrollout.plan.safety import SafetyResult, check_rollback_safety


def schema(*features: dict[str, Any], extra: str = "ignore") -> ServingSchema:
    return ServingSchema.model_validate({"version": 1, "features": list(features), "extraFeatures": extra})


def feature(name: str, type_: str = "string", required: bool = True) -> dict[str, Any]:
    return {"name": name, "type": type_, "required": required}


def test_identical_schemas_are_safe() -> None:
    both = schema(feature("user_id"), feature("embedding", "float[]", required=False), extra="reject")
    assert check_rollback_safety(both, both) == SafetyResult(safe=True, reasons=[])


def test_candidate_adding_features_is_safe_when_stable_ignores_extras() -> None:
    stable = schema(feature("user_id"))
    candidate = schema(feature("user_id"), feature("embedding", "float[]"))
    assert check_rollback_safety(stable, candidate).safe


def test_candidate_adding_features_is_unsafe_when_stable_rejects_extras() -> None:
    stable = schema(feature("user_id"), extra="reject")
    candidate = schema(feature("user_id"), feature("embedding", "float[]", required=False))
    result = check_rollback_safety(stable, candidate)
    assert not result.safe
    assert result.checked
    assert len(result.reasons) == 1
    assert "'embedding'" in result.reasons[0]
    assert "rejects unknown features" in result.reasons[0]


def test_feature_stable_requires_but_candidate_dropped() -> None:
    stable = schema(feature("user_id"), feature("country"))
    candidate = schema(feature("user_id"))
    result = check_rollback_safety(stable, candidate)
    assert not result.safe
    assert result.reasons == [
        "feature 'country' is required by stable but absent from the candidate's schema, "
        "so candidate-shaped requests will not carry it."
    ]


def test_optional_feature_of_stable_may_be_dropped() -> None:
    stable = schema(feature("user_id"), feature("country", required=False))
    assert check_rollback_safety(stable, schema(feature("user_id"))).safe


def test_feature_stable_requires_but_candidate_made_optional() -> None:
    stable = schema(feature("user_id"))
    candidate = schema(feature("user_id", required=False))
    result = check_rollback_safety(stable, candidate)
    assert not result.safe
    assert result.reasons == [
        "feature 'user_id' is required by stable but optional for the candidate, "
        "so candidate-shaped requests may omit it."
    ]


def test_candidate_requiring_what_stable_has_as_optional_is_safe() -> None:
    stable = schema(feature("user_id", required=False))
    assert check_rollback_safety(stable, schema(feature("user_id"))).safe


def test_type_change_is_unsafe() -> None:
    stable = schema(feature("age", "int", required=False))
    candidate = schema(feature("age", "float", required=False))
    result = check_rollback_safety(stable, candidate)
    assert not result.safe
    assert result.reasons == [
        "feature 'age' is int for stable but float for the candidate, "
        "so stable would misread candidate-shaped requests."
    ]


def test_every_problem_is_reported_once_in_a_stable_order() -> None:
    stable = schema(
        feature("a"), feature("b"), feature("c", "int"), feature("d", required=False), extra="reject"
    )
    candidate = schema(feature("b", required=False), feature("c", "string", required=False), feature("e"))
    result = check_rollback_safety(stable, candidate)
    assert not result.safe
    assert [r.split("'")[1] for r in result.reasons] == ["a", "b", "c", "e"]
    assert all(r.endswith(".") and r.count(". ") == 0 for r in result.reasons)  # one sentence each


@pytest.mark.parametrize(
    ("stable", "candidate", "missing"),
    [
        (None, schema(feature("a")), "the stable version declares"),
        (schema(feature("a")), None, "the candidate version declares"),
        (None, None, "the stable and the candidate version declare"),
    ],
)
def test_unknown_schemas_are_safe_but_unchecked(
    stable: ServingSchema | None, candidate: ServingSchema | None, missing: str
) -> None:
    result = check_rollback_safety(stable, candidate)
    assert result.safe
    assert not result.checked
    assert len(result.reasons) == 1
    assert result.reasons[0].startswith("rollback safety could not be checked")
    assert missing in result.reasons[0]


TYPES = ["string", "int", "float", "bool", "bytes", "string[]", "int[]", "float[]"]
features = st.lists(
    st.builds(feature, st.sampled_from(["a", "b", "c", "d"]), st.sampled_from(TYPES), st.booleans()),
    unique_by=lambda f: f["name"],
)


@given(features, features, st.sampled_from(["ignore", "reject"]))
def test_safe_exactly_when_stable_can_read_every_candidate_request(
    stable_features: list[dict[str, Any]], candidate_features: list[dict[str, Any]], extra: str
) -> None:
    stable = schema(*stable_features, extra=extra)
    candidate = schema(*candidate_features)
    result = check_rollback_safety(stable, candidate)
    offered = {f["name"]: f for f in candidate_features}
    known = {f["name"]: f for f in stable_features}
    # Model: every request the candidate may receive must satisfy stable.
    readable = all(
        (not f["required"] or offered.get(f["name"], {}).get("required", False))
        and (f["name"] not in offered or offered[f["name"]]["type"] == f["type"])
        for f in stable_features
    ) and (extra == "ignore" or all(name in known for name in offered))
    assert result.safe == readable
    assert result.safe == (result.reasons == [])
    assert check_rollback_safety(stable, stable).safe  # a version can always take its own requests
