"""What a person sees with kubectl: the printer columns of `kubectl get mro` and `kubectl explain`."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest

from modelrollout.api.guards import Guard
from modelrollout.api.status import Condition, ModelRolloutStatus, Samples, SliceStatus
from modelrollout.identity import GROUP, PLURAL, VERSION
from tests.support.invalid_cases import VALID
from tests.support.specs import manifest

if TYPE_CHECKING:
    from tests.conftest import Cluster, NamespacedApi

pytestmark = pytest.mark.integration


def canary_status() -> ModelRolloutStatus:
    now = datetime.now(UTC).replace(microsecond=0)
    return ModelRolloutStatus(
        observed_generation=1,
        phase="Canary",
        stable_version="v41",
        candidate_version="v42",
        step=2,
        canary_weight=25,
        failing_slices=1,
        phase_since=now,
        slices=[
            SliceStatus(
                name="android", canary_weight=25, verdict="Fail", samples=Samples(stable=1200, canary=390)
            ),
            SliceStatus(
                name="beta", canary_weight=25, verdict="Pass", samples=Samples(stable=800, canary=260)
            ),
            SliceStatus(
                name="default", canary_weight=25, verdict="Pass", samples=Samples(stable=5000, canary=1700)
            ),
        ],
        conditions=[
            Condition(type="Ready", status="False", reason="Canary", last_transition_time=now),
            Condition(type="Progressing", status="True", reason="StepPassing", last_transition_time=now),
            Condition(type="Degraded", status="True", reason="SliceFailing", last_transition_time=now),
        ],
        message="slice android: errors 0.080 > 0.05",
    )


async def test_get_shows_the_status_in_the_printer_columns(cluster: Cluster, kube: NamespacedApi) -> None:
    await kube.custom.create_namespaced_custom_object(GROUP, VERSION, kube.namespace, PLURAL, manifest(VALID))
    live: Any = await kube.custom.get_namespaced_custom_object(
        GROUP, VERSION, kube.namespace, PLURAL, "recommender"
    )
    status = canary_status()
    live["status"] = status.wire()
    written: Any = await kube.custom.replace_namespaced_custom_object_status(
        GROUP, VERSION, kube.namespace, PLURAL, "recommender", live
    )
    assert ModelRolloutStatus.model_validate(written["status"]) == status, "the status schema pruned a field"

    result = cluster.kubectl("get", "mro", "-n", kube.namespace, check=False)
    for _ in range(50):  # right after the CRD is Established, discovery may not know the short name yet
        if result.returncode == 0:
            break
        await asyncio.sleep(0.2)
        result = cluster.kubectl("get", "mro", "-n", kube.namespace, check=False)
    assert result.returncode == 0, result.stderr
    header, row = result.stdout.strip().splitlines()
    assert header.split() == ["NAME", "PHASE", "READY", "STABLE", "CANDIDATE", "WEIGHT", "FAILING", "AGE"]
    *values, age = row.split()
    assert values == ["recommender", "Canary", "False", "v41", "v42", "25", "1"]
    assert re.fullmatch(r"\d+s", age), age


def explained(cluster: Cluster, field: str) -> str:
    """`kubectl explain` output with its line wrapping undone."""
    return " ".join(cluster.kubectl("explain", f"{PLURAL}.{field}").stdout.split())


def test_explain_prints_the_field_descriptions_of_guards(cluster: Cluster) -> None:
    text = explained(cluster, "spec.analysis.guards")
    assert "Upper bound on candidate / stable in the same slice and window." in text
    for name, info in Guard.model_fields.items():
        alias = info.alias or name
        assert info.description is not None, f"Guard.{name} has no description"
        assert f"{alias} <" in text, f"explain lists no field {alias}"
        assert " ".join(info.description.split()) in text, f"explain lacks the description of {alias}"


def test_explain_prints_enums_and_defaults(cluster: Cluster) -> None:
    text = explained(cluster, "spec.strategy.promotion.mode")
    assert "ENUM: auto manual" in text
    assert "(default auto)" in text
