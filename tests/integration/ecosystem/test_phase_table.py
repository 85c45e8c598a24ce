"""The docs table "What kstatus, Argo CD and kubectl read", checked with each tool's own code on a live object
per state made by the real planner: kstatus (cli-utils) and Argo CD's health (argo-cd) through the `verdicts`
helper, `kubectl wait` and `kubectl get` against the sandbox's API server."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import pytest

from modelrollout.identity import GROUP, PLURAL, VERSION
from modelrollout.plan import Commands
from tests.support.rollout_states import (
    EXPECTED,
    NO_STATUS,
    WAIT_CONDITIONS,
    docs_table,
    live_object,
    phases,
    planner_states,
    state_of,
    true_conditions,
)
from tests.support.verdicts import argocd_health_all, kstatus_all
from tests.support.world import World, make_spec, verdicts

if TYPE_CHECKING:
    from tests.conftest import Cluster, NamespacedApi

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def states() -> dict[str, dict[str, Any]]:
    return planner_states()


def test_the_docs_table_is_the_one_the_tests_check() -> None:
    assert docs_table() == EXPECTED


def test_the_states_cover_every_phase_and_each_object_is_in_its_row(
    states: dict[str, dict[str, Any]],
) -> None:
    assert phases() <= set(states), f"phases without a row: {sorted(phases() - set(states))}"
    assert {name: state_of(obj) for name, obj in states.items()} == {name: name for name in states}
    for name, obj in states.items():
        assert true_conditions(obj) == EXPECTED[name].wait, name


def test_kstatus_reads_every_state_as_the_table_says(states: dict[str, dict[str, Any]]) -> None:
    answers = dict(zip(states, kstatus_all(list(states.values())), strict=True))
    assert {name: a.status for name, a in answers.items()} == {n: e.kstatus for n, e in EXPECTED.items()}
    assert answers["Paused"].message.startswith("paused by a person"), "the reason a wait is still waiting"
    assert (
        "waiting for `kubectl modelrollout promote`" in answers["Canary awaiting a manual promotion"].message
    )
    assert answers["RolledBack"].message.startswith("slice android"), "a Flux failure names the slice"


def test_argocd_reads_every_state_as_the_table_says(states: dict[str, dict[str, Any]]) -> None:
    answers = dict(zip(states, argocd_health_all(list(states.values())), strict=True))
    assert {name: a.status for name, a in answers.items()} == {n: e.argocd for n, e in EXPECTED.items()}
    assert answers["RolledBack"].message.endswith("rolled back to v1")
    assert answers["spec refused (InvalidSpec)"].message.startswith("spec.analysis.guards[0].max")


def lifecycle(world: World, done: str, limit: int = 200) -> list[dict[str, Any]]:
    """Every distinct live object the planner shows until the phase `done` (of the world's version)."""
    seen: list[dict[str, Any]] = [live_object(world)]
    for _ in range(limit):
        world.tick()
        seen.append(live_object(world))
        if world.status.phase == done and world.status.observed_generation == world.generation:
            return seen
    raise AssertionError(f"{done} not reached: {world.status.phase} {world.status.message}")


@pytest.mark.parametrize("ending", ["Succeeded", "RolledBack"])
def test_kstatus_calls_a_rollout_done_only_when_it_ended(ending: str) -> None:
    """What a Flux `wait: true` sees tick by tick: InProgress until the very tick the rollout ends."""
    world = World(make_spec())
    world.bootstrap()
    world.set_version("v2")
    if ending == "RolledBack":
        world.script = lambda w: (
            verdicts(w.spec, w.now, {"ios": "Fail"})
            if w.status.phase == "Canary"
            else verdicts(w.spec, w.now)
        )
    objects = lifecycle(world, ending)
    answers = [a.status for a in kstatus_all(objects)]
    assert answers[:-1] == ["InProgress"] * (len(objects) - 1), list(
        zip([o["status"].get("phase") for o in objects], answers, strict=True)
    )
    assert answers[-1] == {"Succeeded": "Current", "RolledBack": "Failed"}[ending]


def test_a_paused_rollout_stays_in_progress_until_resumed_and_done() -> None:
    world = World(make_spec())
    world.bootstrap()
    world.set_version("v2")
    world.run_until(lambda w: w.status.phase == "Shadow")
    world.commands = Commands(paused=True)
    paused = [live_object(world) for _ in range(3) if world.tick() is not None]
    world.commands = Commands(paused=False)
    objects = paused + lifecycle(world, "Succeeded")
    answers = [a.status for a in kstatus_all(objects)]
    assert answers[:3] == ["InProgress"] * 3
    assert answers[-1] == "Current"
    assert answers.count("Current") == 1


async def test_kubectl_wait_and_the_printer_columns_read_every_state_as_the_table_says(
    cluster: Cluster, kube: NamespacedApi, states: dict[str, dict[str, Any]]
) -> None:
    """One ModelRollout per state, its status written through the status subresource; then the real
    `kubectl wait --for=condition=X --timeout=0` for each condition, and `kubectl get`."""
    names: dict[str, str] = {}
    for index, (state, obj) in enumerate(states.items()):
        name = f"state-{index}"
        names[name] = state
        body = {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "metadata": {"name": name}}
        created: Any = await kube.custom.create_namespaced_custom_object(
            GROUP, VERSION, kube.namespace, PLURAL, {**body, "spec": obj["spec"]}
        )
        if state == NO_STATUS:
            assert created["status"] == {"observedGeneration": 0}, "the CRD's status default"
            continue
        # The planner's generations, shifted to the live object's (a status one behind stays one behind).
        shift = int(created["metadata"]["generation"]) - int(obj["metadata"]["generation"])
        created["status"] = shifted(obj["status"], shift)
        await kube.custom.replace_namespaced_custom_object_status(
            GROUP, VERSION, kube.namespace, PLURAL, name, created
        )
    met: dict[str, set[str]] = {state: set() for state in states}
    for condition in WAIT_CONDITIONS:
        result = await asyncio.to_thread(
            cluster.kubectl,
            "wait", "mro", "--all", "-n", kube.namespace, f"--for=condition={condition}", "--timeout=0",
            check=False,
        )  # fmt: skip
        for line in result.stdout.splitlines():  # "modelrollout.modelrollout.io/state-3 condition met"
            if line.endswith("condition met"):
                met[names[line.split()[0].split("/")[1]]].add(condition)
    assert met == {state: set(EXPECTED[state].wait) for state in states}

    header, *rows = cluster.kubectl("get", "mro", "-n", kube.namespace).stdout.splitlines()
    columns = {
        names[row.split()[0]]: (cell(header, row, "PHASE"), cell(header, row, "READY")) for row in rows
    }
    assert columns == {s: (e.phase_column, e.ready_column) for s, e in EXPECTED.items()}
    live = [
        await kube.custom.get_namespaced_custom_object(GROUP, VERSION, kube.namespace, PLURAL, name)
        for name in names
    ]
    assert [a.status for a in kstatus_all(live)] == [
        EXPECTED[names[o["metadata"]["name"]]].kstatus for o in live
    ]


def cell(header: str, row: str, column: str) -> str:
    """One cell of kubectl's table output, found by its column's position ("(blank)" for an empty one)."""
    start = header.index(column)
    end = header.index(" ", start)
    while end < len(header) and header[end] == " ":
        end += 1
    return row[start:end].strip() or "(blank)"


def shifted(status: dict[str, Any], by: int) -> dict[str, Any]:
    out = dict(status)
    out["observedGeneration"] = int(status["observedGeneration"]) + by
    out["conditions"] = [
        {**c, "observedGeneration": int(c["observedGeneration"]) + by} for c in status.get("conditions", [])
    ]
    return out
