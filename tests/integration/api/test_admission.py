"""The invalid-manifest catalogue and the examples against the real API server (create with dryRun=All)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from modelrollout.api.spec import ModelRolloutSpec
from tests.support.invalid_cases import CASES, EDGES, VALID, Invalid, edited
from tests.support.specs import manifest

from .admission import dry_run_create

if TYPE_CHECKING:
    from tests.conftest import NamespacedApi

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


async def test_the_base_spec_is_accepted(kube: NamespacedApi) -> None:
    answer = await dry_run_create(kube.custom, kube.namespace, manifest(VALID))
    assert answer.accepted, answer.message


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
async def test_admission_refuses_the_case_and_names_the_field(kube: NamespacedApi, case: Invalid) -> None:
    answer = await dry_run_create(kube.custom, kube.namespace, manifest(case.spec))
    assert answer.status == case.status, f"expected {case.status}, got {answer.status}: {answer.message}"
    if case.status == 400:  # strict decoding: no causes, the message lists the unknown fields
        assert f'unknown field "{case.path}"' in answer.message, answer.message
        return
    assert answer.body.get("reason") == "Invalid"
    assert case.path in answer.fields, f"{case.path} not among {answer.fields}: {answer.message}"
    if case.rule is not None:
        # A rule on an object omits the value; a rule on a string quotes it ("0s") before the message.
        said = re.escape(case.path) + r': Invalid value: ("[^"]*": )?' + re.escape(case.rule)
        assert re.search(said, answer.message), answer.message


@pytest.mark.parametrize("name", list(EDGES))
async def test_admission_accepts_what_the_models_accept(kube: NamespacedApi, name: str) -> None:
    answer = await dry_run_create(kube.custom, kube.namespace, manifest(EDGES[name]))
    assert answer.accepted, answer.message
    # What the server keeps is what the models read from the manifest.
    assert ModelRolloutSpec.model_validate(answer.body["spec"]) == ModelRolloutSpec.model_validate(
        EDGES[name]
    )


async def test_without_strict_field_validation_unknown_fields_are_dropped_not_refused(
    kube: NamespacedApi,
) -> None:
    """Documents the Python client's default (no fieldValidation, i.e. Warn): tools must send Strict."""
    spec = edited(("replica", 3), ("analysis.guards[0].threshold", 0.05))
    answer = await dry_run_create(kube.custom, kube.namespace, manifest(spec), strict=False)
    assert answer.accepted, answer.message
    assert "replica" not in answer.body["spec"]
    assert "threshold" not in answer.body["spec"]["analysis"]["guards"][0]
    strict = await dry_run_create(kube.custom, kube.namespace, manifest(spec))
    assert strict.status == 400
    assert 'unknown field "spec.replica"' in strict.message


@pytest.mark.parametrize("name", ["minimal.yaml", "full.yaml", "manual-promotion.yaml"])
async def test_example_is_accepted_as_written(kube: NamespacedApi, name: str) -> None:
    document: dict[str, Any] = yaml.safe_load((EXAMPLES / name).read_text())
    document["metadata"]["namespace"] = kube.namespace
    answer = await dry_run_create(kube.custom, kube.namespace, document)
    assert answer.accepted, answer.message
    assert answer.body["spec"] == document["spec"], "the API server pruned or changed part of the example"
