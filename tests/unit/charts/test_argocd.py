"""The Argo CD health check, run the way Argo CD runs it, on statuses the real planner produced."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelrollout.api.spec import ModelRolloutSpec
from modelrollout.api.status import ModelRolloutStatus
from modelrollout.plan import Commands, GateResult
from modelrollout.plan.conditions import set_condition
from tests.support.argocd import HEALTH_SCRIPT, HealthScriptError, argo_health
from tests.support.world import World, make_spec, spec_dict, verdicts

REPO = Path(__file__).resolve().parents[3]
EXAMPLES = REPO / "examples" / "argocd"
HEALTH_KEY = "resource.customizations.health.modelrollout.io_ModelRollout"


def as_object(world: World, *, with_status: bool = True) -> dict[str, Any]:
    """The ModelRollout as Argo CD sees it: the world's spec at its generation and the planner's status."""
    obj: dict[str, Any] = {
        "apiVersion": "modelrollout.io/v1alpha1",
        "kind": "ModelRollout",
        "metadata": {"name": "recommender", "namespace": "ml", "generation": world.generation, "uid": "u-1"},
        "spec": world.spec.wire(),
    }
    if with_status:
        obj["status"] = world.status.wire()
    return dict(json.loads(json.dumps(obj)))  # exactly what crosses the wire: JSON types only


def health(world: World) -> tuple[str, str]:
    return argo_health(as_object(world))


def phases_and_health(world: World, until: str, limit: int = 200) -> list[tuple[str | None, str]]:
    """Ticks until the phase is `until`, recording each distinct (phase, health status)."""
    seen: list[tuple[str | None, str]] = []
    for _ in range(limit):
        world.tick()
        state = (world.status.phase, health(world)[0])
        if not seen or seen[-1] != state:
            seen.append(state)
        if world.status.phase == until:
            return seen
    raise AssertionError(f"{until} not reached: {world.status.phase} {world.status.message}")


def manual_world() -> World:
    spec = spec_dict()
    spec["strategy"] = {**spec["strategy"], "promotion": {"mode": "manual"}}
    world = World(ModelRolloutSpec.model_validate(spec))
    world.bootstrap()
    world.set_version("v2")
    return world


def rolled_out_world() -> World:
    world = World(make_spec())
    world.bootstrap()
    world.set_version("v2")
    return world


# The files ---------------------------------------------------------------------------------------------------
def test_argocd_cm_embeds_the_health_script_verbatim() -> None:
    config_map = yaml.safe_load((EXAMPLES / "argocd-cm.yaml").read_text())
    assert config_map["kind"] == "ConfigMap"
    assert config_map["metadata"] == {**config_map["metadata"], "name": "argocd-cm", "namespace": "argocd"}
    assert config_map["data"][HEALTH_KEY] == HEALTH_SCRIPT.read_text(), (
        "examples/argocd/argocd-cm.yaml must embed charts/modelrollout-operator/argocd/health.lua verbatim; "
        "re-indent the script by four spaces under the key after changing it"
    )


def test_there_is_one_copy_of_the_script() -> None:
    copies = []
    for top in REPO.iterdir():
        if top.is_dir() and not top.name.startswith("."):  # not .venv, .sandbox, .git
            copies += [p.relative_to(REPO) for p in top.glob("**/*.lua")]
    assert copies == [HEALTH_SCRIPT.relative_to(REPO)]


def test_the_application_ignores_only_the_operators_routes_and_keeps_them_on_sync() -> None:
    app = yaml.safe_load((EXAMPLES / "application.yaml").read_text())
    assert app["kind"] == "Application"
    assert "RespectIgnoreDifferences=true" in app["spec"]["syncPolicy"]["syncOptions"]
    [entry] = app["spec"]["ignoreDifferences"]
    assert (entry["group"], entry["kind"]) == ("networking.istio.io", "VirtualService")
    assert entry["jqPathExpressions"] == ['.spec.http[] | select(.name | startswith("modelrollout-"))']
    assert entry["jsonPointers"] == ["/metadata/annotations/modelrollout.io~1rollout"]
    docs = (REPO / "docs" / "operations.md").read_text()
    assert entry["jqPathExpressions"][0] in docs


# No status yet, stale status -------------------------------------------------------------------------------
def test_a_rollout_without_status_is_progressing_waiting_for_the_operator() -> None:
    world = World(make_spec())
    status, message = argo_health(as_object(world, with_status=False))
    assert status == "Progressing"
    assert "waiting for the operator" in message.lower()
    obj = as_object(world, with_status=False)
    obj["status"] = {}
    assert argo_health(obj)[0] == "Progressing"


def test_a_new_spec_the_operator_has_not_seen_is_progressing_not_healthy() -> None:
    world = World(make_spec())
    world.bootstrap()
    assert health(world)[0] == "Healthy"
    world.set_version("v2")  # generation 2; the status still describes generation 1 (Succeeded)
    assert world.status.phase == "Succeeded"
    status, message = health(world)
    assert status == "Progressing"
    assert "generation 2" in message


# Real lifecycles -------------------------------------------------------------------------------------------
def test_first_deploy_progresses_then_is_healthy() -> None:
    world = World(make_spec(), load_ticks=3)
    assert phases_and_health(world, "Succeeded") == [("Warming", "Progressing"), ("Succeeded", "Healthy")]
    assert health(world)[1] == world.status.message


def test_a_healthy_rollout_progresses_through_every_phase_then_is_healthy() -> None:
    world = rolled_out_world()
    assert phases_and_health(world, "Succeeded") == [
        ("Warming", "Progressing"),
        ("Shadow", "Progressing"),
        ("Canary", "Progressing"),
        ("Promoting", "Progressing"),
        ("Succeeded", "Healthy"),
    ]
    assert world.status.stable_version == "v2"
    assert health(world) == ("Healthy", world.status.message)


def test_a_rollback_is_degraded_and_names_the_slice() -> None:
    world = rolled_out_world()
    world.run_until(lambda w: w.status.phase == "Canary")
    world.script = lambda w: verdicts(w.spec, w.now, {"android": "Fail"})
    world.tick()
    assert world.status.phase == "RolledBack"
    status, message = health(world)
    assert status == "Degraded"
    assert message.startswith("slice android")
    assert message.endswith("rolled back to v1")


def test_a_canary_waiting_for_manual_promotion_is_suspended_until_promoted() -> None:
    world = manual_world()
    world.run_until(lambda w: w.status.phase == "Canary")
    assert health(world)[0] == "Progressing"
    world.run_until(lambda w: "waiting for `kubectl modelrollout promote`" in w.status.message)
    status, message = health(world)
    assert (world.status.phase, status) == ("Canary", "Suspended")
    assert "kubectl modelrollout promote" in message
    world.commands = Commands(promote="p1")
    world.run_until(lambda w: w.status.phase == "Succeeded", limit=5)
    assert health(world)[0] == "Healthy"


def test_a_paused_rollout_is_suspended_and_progresses_again_when_resumed() -> None:
    world = rolled_out_world()
    world.run_until(lambda w: w.status.phase == "Canary")
    world.commands = Commands(paused=True)
    world.tick()
    assert world.status.phase == "Paused"
    assert health(world)[0] == "Suspended"
    world.commands = Commands(paused=False)
    world.tick()
    assert health(world)[0] == "Progressing"


def test_a_rollout_blocked_by_a_gate_is_degraded_with_the_gates_reason() -> None:
    world = World(make_spec(gates=[{"name": "leakage", "webhook": {"url": "http://127.0.0.1:1/gate"}}]))
    world.gates = [GateResult("leakage", True, "ok")]
    world.bootstrap()
    world.set_version("v2")
    world.gates = [GateResult("leakage", False, "train/test leakage found in fold 3")]
    world.tick()
    assert world.status.phase == "Blocked"
    assert health(world) == ("Degraded", "gate leakage refused v2: train/test leakage found in fold 3")


def test_a_rollout_blocked_by_an_unsafe_rollback_is_degraded() -> None:
    schema_v1 = {"version": 1, "features": [{"name": "user_id", "type": "string"}]}
    world = World(
        make_spec(model={"name": "recommender", "version": "v1", "uri": "s3://x/v1", "schema": schema_v1})
    )
    world.bootstrap()
    world.set_version("v2", schema={"version": 2, "features": [{"name": "user_id", "type": "int"}]})
    world.tick()
    assert world.status.phase == "Blocked"
    status, message = health(world)
    assert status == "Degraded"
    assert "user_id" in message


def test_a_first_version_that_never_loads_is_failed_and_degraded() -> None:
    world = World(make_spec())
    world.ready_cap["v1"] = 0
    world.run_until(lambda w: w.status.phase == "Failed", limit=30)
    assert health(world)[0] == "Degraded"


def test_a_spec_the_operator_refuses_is_degraded_even_after_a_success() -> None:
    """What the reconciler does with a spec its models reject: the InvalidSpec condition, phase unchanged."""
    world = World(make_spec())
    world.bootstrap()
    world.generation += 1
    message = "spec.analysis.guards[0].max: Input should be a valid number"
    set_condition(
        world.status, "InvalidSpec", "True", "ValidationFailed", message, world.now, world.generation
    )
    world.status.message = message
    world.status.observed_generation = world.generation
    assert world.status.phase == "Succeeded"
    assert health(world) == ("Degraded", message)
    fresh = ModelRolloutStatus()  # a new rollout refused before it ever had a phase
    set_condition(fresh, "InvalidSpec", "True", "ValidationFailed", message, world.now, world.generation)
    fresh.observed_generation = world.generation
    world.status = fresh
    assert health(world) == ("Degraded", message)


# The script's contract -------------------------------------------------------------------------------------
def test_a_phase_from_a_newer_operator_is_unknown_not_healthy() -> None:
    obj = {"metadata": {"generation": 1}, "status": {"phase": "Hibernating", "observedGeneration": 1}}
    assert argo_health(obj) == ("Unknown", "Unknown phase Hibernating")


def test_the_helper_rejects_what_argo_cd_would_reject() -> None:
    with pytest.raises(HealthScriptError, match="status 'Fine'"):
        argo_health({}, script='return {status = "Fine", message = ""}')
    with pytest.raises(HealthScriptError, match="not a table"):
        argo_health({}, script="return 1")
    with pytest.raises(HealthScriptError, match="failed"):
        argo_health({}, script='return io.open("/etc/passwd")')  # io is withheld, as in Argo CD
