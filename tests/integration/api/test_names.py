"""The rollout's name is a label value on everything the operator creates: admission bounds it."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from modelrollout.identity import MAX_NAME, NAME_TOO_LONG
from tests.support.invalid_cases import VALID
from tests.support.specs import manifest

from .admission import dry_run_create

if TYPE_CHECKING:
    from tests.conftest import NamespacedApi

pytestmark = pytest.mark.integration


async def test_a_name_longer_than_a_label_value_is_refused_with_the_reason(kube: NamespacedApi) -> None:
    answer = await dry_run_create(kube.custom, kube.namespace, manifest(VALID, name="r" * (MAX_NAME + 1)))
    assert answer.status == 422, answer.message
    assert NAME_TOO_LONG in answer.message


async def test_a_name_of_exactly_63_characters_is_admitted(kube: NamespacedApi) -> None:
    answer = await dry_run_create(kube.custom, kube.namespace, manifest(VALID, name="r" * MAX_NAME))
    assert answer.accepted, answer.message
