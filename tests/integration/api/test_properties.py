"""Generated valid specs are accepted by the real API server and read back into the same model."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import HealthCheck, given, settings

from modelrollout.api.spec import ModelRolloutSpec
from tests.support.specs import manifest
from tests.support.strategies import specs

from .admission import dry_run_create

if TYPE_CHECKING:
    from tests.conftest import NamespacedApi

pytestmark = pytest.mark.integration


# The namespace fixture is shared by the examples on purpose: dry-run creates store nothing.
@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=specs())
async def test_valid_specs_are_admitted_and_round_trip(kube: NamespacedApi, raw: dict[str, Any]) -> None:
    spec = ModelRolloutSpec.model_validate(raw)
    assert ModelRolloutSpec.model_validate(spec.wire()) == spec
    answer = await dry_run_create(kube.custom, kube.namespace, manifest(raw))
    assert answer.accepted, answer.message
    # The server keeps every field (nothing pruned by a schema that lags the models) and every value.
    assert ModelRolloutSpec.model_validate(answer.body["spec"]) == spec
    # The models' wire form is admitted too: defaults the models fill in are valid values.
    again = await dry_run_create(kube.custom, kube.namespace, manifest(spec.wire()))
    assert again.accepted, again.message
