"""The example manifests validate against the models and show what each one promises to show."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from modelrollout.api.spec import ModelRolloutSpec
from modelrollout.api.validation import lint_spec
from modelrollout.identity import API_VERSION, KIND

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
NAMES = ["minimal.yaml", "full.yaml", "manual-promotion.yaml", "blue-green.yaml", "ab-experiment.yaml"]


def load(name: str) -> dict[str, Any]:
    document = yaml.safe_load((EXAMPLES / name).read_text())
    assert isinstance(document, dict)
    return document


def spec_of(name: str) -> ModelRolloutSpec:
    return ModelRolloutSpec.model_validate(load(name)["spec"])


@pytest.mark.parametrize("name", NAMES)
def test_example_is_a_valid_model_rollout(name: str) -> None:
    document = load(name)
    assert document["apiVersion"] == API_VERSION
    assert document["kind"] == KIND
    assert lint_spec(document["spec"]) == []
    spec = ModelRolloutSpec.model_validate(document["spec"])
    assert ModelRolloutSpec.model_validate(spec.wire()) == spec


def test_minimal_sets_only_the_required_fields() -> None:
    required = {
        field.alias or name for name, field in ModelRolloutSpec.model_fields.items() if field.is_required()
    }
    assert set(load("minimal.yaml")["spec"]) == required


def test_full_shows_every_part_of_the_api() -> None:
    spec = spec_of("full.yaml")
    assert spec.strategy.shadow is not None
    assert len(spec.strategy.steps()) == 3
    assert spec.strategy.qa_override is not None
    assert len(spec.slices) == 4
    operators = {
        kind
        for s in spec.slices
        for match in s.match.headers.values()
        for kind in ("exact", "prefix", "regex")
        if getattr(match, kind) is not None
    }
    assert operators == {"exact", "prefix", "regex"}
    assert any(guard.slices for guard in spec.analysis.guards), "per-slice threshold overrides"
    assert spec.analysis.metrics.profile == "istio"
    assert any(g.test == "sequential" and g.metric == "errorRate" for g in spec.analysis.guards)
    assert spec.gates
    assert spec.rollback.notify
    assert spec.model.serving_schema is not None
    assert spec.model.serving_schema.features
    document = load("full.yaml")["spec"]
    assert "rollback" in document
    assert "rollbackSafety" in document["rollback"]


def test_manual_promotion_waits_for_a_person() -> None:
    assert spec_of("manual-promotion.yaml").strategy.promotion.mode == "manual"


def test_blue_green_shows_preview_bake_manual_switch_and_relative_guards() -> None:
    spec = spec_of("blue-green.yaml")
    assert spec.strategy.canary is None
    blue_green = spec.strategy.blue_green
    assert blue_green is not None
    assert blue_green.preview is not None
    assert blue_green.bake == "30m"
    assert spec.strategy.promotion.mode == "manual"
    assert any(g.max_ratio_to_stable is not None for g in spec.analysis.guards)
