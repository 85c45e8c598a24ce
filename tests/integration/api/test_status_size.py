"""The largest status the bounds allow is stored by the real API server (etcd's limit is 1.5 MiB)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest

from modelrollout.api.status import ModelRolloutStatus
from modelrollout.identity import GROUP, PLURAL, VERSION
from tests.support.invalid_cases import VALID
from tests.support.largest_status import decisions, largest_status
from tests.support.specs import manifest

if TYPE_CHECKING:
    from tests.conftest import NamespacedApi

pytestmark = pytest.mark.integration


async def test_the_largest_status_the_bounds_allow_is_written_and_reads_back(kube: NamespacedApi) -> None:
    await kube.custom.create_namespaced_custom_object(GROUP, VERSION, kube.namespace, PLURAL, manifest(VALID))
    live: Any = await kube.custom.get_namespaced_custom_object(
        GROUP, VERSION, kube.namespace, PLURAL, "recommender"
    )
    status = largest_status(decisions())
    live["status"] = status.wire()
    assert len(json.dumps(live)) > 800_000, "not the largest status: the test would prove little"
    written: Any = await kube.custom.replace_namespaced_custom_object_status(
        GROUP, VERSION, kube.namespace, PLURAL, "recommender", live
    )
    assert ModelRolloutStatus.model_validate(written["status"]) == status
