"""No spec the API server admits can crash a tick.

Specs are drawn from the committed CRD's own schema (hypothesis-jsonschema): the valid catalogue spec with one
to three of its fields, at any depth, replaced by values drawn from that field's schema in the CRD. Each draw
goes to the real API server (create, dryRun=All, Strict). What it admits is planned over random
observations (readiness, Prometheus answers and errors, gates, commands, time jumps, version changes) and
reconciled by the real controller over the in-memory API: no tick may raise, every status must read back,
and `kubectl modelrollout lint` must agree with admission on every draw.
"""

from __future__ import annotations

import copy
import os
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema

from modelrollout.api.spec import ModelRolloutSpec
from modelrollout.api.validation import lint_spec
from tests.support import random_world
from tests.support.controller import NAMESPACE, Harness
from tests.support.crd_schema import place, spec_schema, subschemas
from tests.support.invalid_cases import EDGES, VALID
from tests.support.specs import manifest

from .admission import dry_run_create

if TYPE_CHECKING:
    from tests.conftest import NamespacedApi

pytestmark = pytest.mark.integration

EXAMPLES = int(os.environ.get("MODELROLLOUT_NO_CRASH_EXAMPLES", "200"))
FIELDS = list(subschemas(spec_schema()))
FIELD_VALUES = {path: from_schema(schema) for path, schema in FIELDS}
BASES = [VALID, *EDGES.values()]


@st.composite
def drawn_specs(draw: st.DrawFn) -> dict[str, Any]:
    spec: dict[str, Any] = copy.deepcopy(draw(st.sampled_from(BASES)))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from([path for path, _ in FIELDS]))
        place(spec, path, draw(FIELD_VALUES[path]))
    return spec


class Tally:
    drawn = 0
    admitted = 0
    planned_ticks = 0


@pytest.mark.timeout(1500)  # ~2 s an example on the loaded shared machine (an API call, 5-40 plans, 3 ticks)
@seed(20261203)
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(raw=drawn_specs(), data=st.data())
async def test_no_admitted_spec_crashes_a_tick(
    kube: NamespacedApi, raw: dict[str, Any], data: st.DataObject
) -> None:
    Tally.drawn += 1
    answer = await dry_run_create(kube.custom, kube.namespace, manifest(raw))
    problems = lint_spec(raw)
    assert answer.accepted == (problems == []), f"admission {answer.message!r} but lint {problems}"
    if not answer.accepted:
        return
    Tally.admitted += 1
    stored = answer.body
    spec = ModelRolloutSpec.model_validate(stored["spec"])
    ticks = data.draw(st.integers(5, 40), label="ticks")
    random_world.run(data.draw, spec, ticks)
    Tally.planned_ticks += ticks
    harness = Harness()
    harness.kube.add_rollout(
        {**stored, "metadata": {"name": stored["metadata"]["name"], "namespace": NAMESPACE}}
    )
    for _ in range(3):
        await harness.reconciler.tick(NAMESPACE, stored["metadata"]["name"])
        harness.now += timedelta(seconds=data.draw(st.sampled_from([1, 60, 86_400]), label="wait"))
    await harness.runtime.close()


def test_report_how_many_drawn_specs_were_admitted(record_property: Any) -> None:
    """Runs after the property test (same module, same worker): a run that admitted nothing proves nothing."""
    # Both tests of this module run in one process (tests/conftest.py SHARED_WORKER_MODULES), the property test
    # first: no draws here means it did not run, which proves nothing, so it fails rather than skips.
    assert Tally.drawn > 0, "the property test did not run before this check (run the whole module)"
    said = f"{Tally.admitted} of {Tally.drawn} drawn specs admitted, {Tally.planned_ticks} planner ticks"
    record_property("admitted", said)
    print(f"no-crash property: {said}")  # shown with -rA (and in the junit report as a property)
    assert Tally.admitted >= EXAMPLES // 5, (
        f"only {Tally.admitted} of {Tally.drawn} drawn specs were admitted"
    )
