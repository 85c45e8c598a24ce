"""Generated valid specs pass lint and survive a round trip through the wire form (pure, many examples)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings

from modelrollout.api.spec import ModelRolloutSpec
from modelrollout.api.validation import lint_spec
from tests.support.strategies import specs


# CPU-bound (about 10 s of CPU for 300 examples): on the shared machine under load it needs more wall clock.
@pytest.mark.timeout(300)
@settings(max_examples=300, deadline=None)
@given(specs())
def test_generated_specs_are_valid_and_round_trip(raw: dict[str, Any]) -> None:
    assert lint_spec(raw) == []
    spec = ModelRolloutSpec.model_validate(raw)
    assert ModelRolloutSpec.model_validate(spec.wire()) == spec
