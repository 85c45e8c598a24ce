"""Every lifecycle transition of the planner, driven tick by tick in a pure simulated world."""

from __future__ import annotations

from datetime import timedelta

from modelrollout.api.spec import ModelRolloutSpec
from modelrollout.api.status import ModelRolloutStatus
from modelrollout.plan import Commands, Event, GateResult, Notify, RemoveWorkload, SetRoutes, plan
from tests.support.world import World, make_spec, spec_dict, verdicts

SLICES = ["ios", "android", "default"]


def rolled_out_world(**overrides: object) -> World:
    world = World(make_spec(**overrides))
    world.bootstrap()
    world.set_version("v2")
    return world


def condition(world: World, kind: str) -> tuple[str, str]:
    found = next(c for c in world.status.conditions if c.type == kind)
    return found.status, found.reason


def test_initial_deploy_makes_the_first_version_stable_once_model_ready() -> None:
    world = World(make_spec(), load_ticks=3)
    world.tick()
    assert world.status.phase == "Warming"
    assert world.routes is None, "nothing may be routed before a version is model-ready"
    world.bootstrap()
    assert world.status.stable_version == "v1"
    assert world.status.candidate_version is None
    assert world.routes == SetRoutes(
        stable="v1", candidate=None, weights=dict.fromkeys(SLICES, 0), mirror_percent=None
    )
    assert condition(world, "Ready") == ("True", "Succeeded")
    assert condition(world, "Progressing")[0] == "False"


def test_healthy_rollout_goes_through_shadow_every_step_and_promotion() -> None:
    world = rolled_out_world()
    seen: list[tuple[str | None, int, float]] = []
    while world.status.stable_version != "v2":
        world.tick()
        state = (world.status.phase, world.status.canary_weight, world.status.mirror_percent)
        if not seen or seen[-1] != state:
            seen.append(state)
        assert len(seen) < 20
    assert seen == [
        ("Warming", 0, 0.0),
        ("Shadow", 0, 100.0),
        ("Canary", 10, 0.0),
        ("Canary", 50, 0.0),
        ("Promoting", 50, 0.0),
        ("Succeeded", 0, 0.0),
    ]
    assert world.status.previous_version == "v1"
    assert world.routes is not None
    assert world.routes.stable == "v2"
    assert world.routes.candidate is None
    reasons = [d.reason for d in world.status.history]
    assert reasons[-5:] == ["ShadowStarted", "ShadowPassed", "StepPassed", "StepPassed", "Promoted"]


def test_shadow_mirrors_every_slice_and_sends_no_user_traffic_to_the_candidate() -> None:
    world = rolled_out_world()
    world.run_until(lambda w: w.status.phase == "Shadow")
    world.tick()
    assert world.routes == SetRoutes(
        stable="v1", candidate="v2", weights=dict.fromkeys(SLICES, 0), mirror_percent=100.0
    )


def test_warming_waits_for_min_ready_replicas_before_any_traffic() -> None:
    world = rolled_out_world()
    world.ready_cap["v2"] = 1  # minReadyReplicas is 2
    for _ in range(8):
        world.tick()
        assert world.status.phase == "Warming"
        assert world.routes is not None
        assert world.routes.candidate is None
    world.ready_cap["v2"] = 2
    world.run_until(lambda w: w.status.phase == "Shadow", limit=3)


def test_canary_weight_never_exceeds_ready_capacity_and_the_pause_waits_for_it() -> None:
    spec = spec_dict()
    spec["strategy"] = {"canary": {"steps": [{"weight": 75, "pause": "10s"}]}}
    world = World(ModelRolloutSpec.model_validate(spec))
    world.bootstrap()
    world.set_version("v2")
    world.ready_cap["v2"] = 2  # 2 of 4 replicas: 50% capacity
    world.run_until(lambda w: w.status.phase == "Canary")
    for _ in range(10):
        world.tick()
        assert world.status.canary_weight == 50
        assert world.status.phase == "Canary"
    assert "(held at 50% until candidate capacity allows)" in world.status.message
    world.ready_cap["v2"] = 4
    world.tick()
    assert world.status.canary_weight == 75
    world.run_until(lambda w: w.status.phase == "Succeeded")


def test_an_immediate_guard_rolls_back_every_slice_in_one_write_naming_the_slice() -> None:
    world = rolled_out_world()
    world.run_until(lambda w: w.status.phase == "Canary")
    writes = world.route_writes
    world.script = lambda w: verdicts(w.spec, w.now, {"android": "Fail"})
    world.tick()
    assert world.status.phase == "RolledBack"
    assert world.route_writes == writes + 1
    assert world.routes == SetRoutes(
        stable="v1", candidate=None, weights=dict.fromkeys(SLICES, 0), mirror_percent=None
    )
    assert world.status.message.startswith("slice android: error-rate fail on android")
    assert world.status.message.endswith("rolled back to v1")
    assert world.status.failing_slices == 1
    assert condition(world, "Degraded") == ("True", "RolledBack")
    assert any(isinstance(a, Notify) and a.reason == "GuardFailed" and a.evidence for a in world.actions)
    assert any(isinstance(a, Event) and a.type == "Warning" for a in world.actions)


def test_a_non_immediate_guard_rolls_back_at_failure_limit_failures_in_the_stage() -> None:
    spec = spec_dict()
    spec["analysis"]["guards"] = [
        {"name": "error-ratio", "metric": "errorRate", "maxRatioToStable": 1.5, "failureLimit": 3}
    ]
    world = World(ModelRolloutSpec.model_validate(spec))
    world.bootstrap()
    world.set_version("v2")
    world.run_until(lambda w: w.status.phase == "Canary")
    pattern = iter(["Fail", "Pass", "Fail", "Pass", "Fail"])
    world.script = lambda w: verdicts(w.spec, w.now, {"ios": next(pattern)})  # type: ignore[dict-item]
    outcomes = []
    for _ in range(5):
        world.tick()
        outcomes.append(world.status.phase)
    assert outcomes == ["Canary"] * 4 + ["RolledBack"], "passes in between do not reset the stage's count"
    assert "slice ios: error-ratio" in world.status.message
    assert world.status.history[-1].evidence[0].failures == 3


def test_inconclusive_holds_and_never_advances() -> None:
    world = rolled_out_world()
    world.run_until(lambda w: w.status.phase == "Canary")
    step = world.status.step
    world.script = lambda w: verdicts(w.spec, w.now, {"default": "Inconclusive"})
    for _ in range(40):
        world.tick()
        assert world.status.phase == "Canary"
        assert world.status.step == step
    assert world.status.inconclusive_count >= 20


def test_inconclusive_fails_after_max_inconclusive_when_policy_says_fail() -> None:
    spec = spec_dict()
    spec["analysis"] = {**spec["analysis"], "onInconclusive": "fail", "maxInconclusive": 3}
    world = World(ModelRolloutSpec.model_validate(spec))
    world.bootstrap()
    world.set_version("v2")
    world.run_until(lambda w: w.status.phase == "Shadow")
    world.script = lambda w: verdicts(w.spec, w.now, default="Inconclusive")
    world.run_until(lambda w: w.status.phase == "RolledBack", limit=5)
    assert world.status.history[-1].reason == "Inconclusive"
    assert world.analysis_calls >= 3


def test_a_step_advances_only_after_every_slice_passed_for_the_whole_pause() -> None:
    world = rolled_out_world()
    world.run_until(lambda w: w.status.phase == "Canary")
    ticks = iter(range(1000))
    # android is inconclusive every third evaluation: its unbroken run never lasts the 10s pause (two ticks)
    world.script = lambda w: verdicts(
        w.spec, w.now, {"android": "Inconclusive" if next(ticks) % 2 else "Pass"}
    )
    for _ in range(20):
        world.tick()
        assert world.status.step == 1
    world.script = None
    world.run_until(lambda w: w.status.step == 2, limit=5)


def test_a_new_version_mid_rollout_restarts_from_stable() -> None:
    world = rolled_out_world()
    world.run_until(lambda w: w.status.phase == "Canary")
    world.set_version("v3")
    actions = world.tick()
    assert world.status.candidate_version == "v3"
    assert world.status.phase == "Warming"
    assert RemoveWorkload("v2") in actions
    assert world.routes is not None
    assert world.routes.candidate is None
    assert world.routes.stable == "v1"
    assert [d.reason for d in world.status.history][-3:] == ["Superseded", "NewVersion", "Deploying"]
    world.run_until(lambda w: w.status.phase == "Succeeded")
    assert world.status.stable_version == "v3"


def test_setting_the_version_back_to_stable_aborts() -> None:
    world = rolled_out_world()
    world.run_until(lambda w: w.status.phase == "Canary")
    world.set_version("v1")
    world.tick()
    assert world.status.phase == "Succeeded"
    assert world.status.candidate_version is None
    assert world.routes == SetRoutes(
        stable="v1", candidate=None, weights=dict.fromkeys(SLICES, 0), mirror_percent=None
    )
    world.tick()
    assert "v2" not in world.deployments


def test_the_same_inputs_always_give_the_same_plan() -> None:
    world = rolled_out_world()
    world.run_until(lambda w: w.status.phase == "Canary")
    observations = world.observations()
    first = plan(world.spec, world.status, observations)
    second = plan(world.spec, world.status.model_copy(deep=True), observations)
    assert first == second


def test_a_restarted_operator_resumes_from_status_alone() -> None:
    world = rolled_out_world()
    world.run_until(lambda w: w.status.step == 2)
    stored = world.status.wire()
    world.status = ModelRolloutStatus.model_validate(stored)  # what a new process reads back from the API
    before = world.routes
    world.tick()
    assert world.status.step == 2
    assert world.status.canary_weight == 50
    assert world.routes == before


def test_rolled_back_candidate_is_kept_for_inspection_then_removed() -> None:
    world = rolled_out_world(rollback={"scaleDownDelay": "30s"})
    world.run_until(lambda w: w.status.phase == "Canary")
    world.script = lambda w: verdicts(w.spec, w.now, {"ios": "Fail"})
    world.tick()
    assert world.status.phase == "RolledBack"
    world.tick()
    assert "v2" in world.deployments
    world.run_until(lambda w: "v2" not in w.deployments, limit=10)
    assert world.now - world.status.phase_since >= timedelta(seconds=30)  # type: ignore[operator]


def test_previous_version_is_kept_warm_then_removed() -> None:
    world = rolled_out_world(rollback={"keepPreviousWarm": "20s"})
    world.run_until(lambda w: w.status.phase == "Succeeded" and w.status.stable_version == "v2")
    assert "v1" in world.deployments
    world.run_until(lambda w: "v1" not in w.deployments, limit=10)


def test_candidate_that_never_loads_is_rolled_back_after_load_timeout() -> None:
    world = rolled_out_world()
    world.ready_cap["v2"] = 0
    world.run_until(lambda w: w.status.phase == "RolledBack", limit=30)
    assert world.status.history[-1].reason == "CandidateNotReady"
    assert "loadTimeout 60s" in world.status.message


def test_unsafe_rollback_blocks_with_the_reason() -> None:
    schema_v1 = {"version": 1, "features": [{"name": "user_id", "type": "string"}]}
    world = World(
        make_spec(model={"name": "recommender", "version": "v1", "uri": "s3://x/v1", "schema": schema_v1})
    )
    world.bootstrap()
    world.set_version("v2", schema={"version": 2, "features": [{"name": "user_id", "type": "int"}]})
    world.tick()
    assert world.status.phase == "Blocked"
    assert "user_id" in world.status.message
    assert condition(world, "RollbackSafe") == ("False", "SchemaIncompatible")
    assert world.routes is not None
    assert world.routes.candidate is None
    assert "v2" not in world.deployments


def test_unsafe_rollback_only_warns_when_policy_is_warn() -> None:
    schema_v1 = {"version": 1, "features": [{"name": "user_id", "type": "string"}]}
    world = World(
        make_spec(
            model={"name": "recommender", "version": "v1", "uri": "s3://x/v1", "schema": schema_v1},
            rollback={"rollbackSafety": "warn"},
        )
    )
    world.bootstrap()
    world.set_version("v2", schema={"version": 2, "features": [{"name": "user_id", "type": "int"}]})
    world.tick()
    assert world.status.phase == "Warming"
    assert condition(world, "RollbackSafe") == ("False", "SchemaIncompatible")


def test_gates_must_explicitly_allow() -> None:
    world = World(make_spec(gates=[{"name": "leakage", "webhook": {"url": "http://127.0.0.1:1/gate"}}]))
    world.gates = [GateResult("leakage", True, "ok")]
    world.bootstrap()
    world.set_version("v2")
    world.gates = [GateResult("leakage", False, "train/test leakage found in fold 3")]
    world.tick()
    assert world.status.phase == "Blocked"
    assert world.status.message == "gate leakage refused v2: train/test leakage found in fold 3"
    world.gates = None  # not fetched: nothing moves
    world.tick()
    assert world.status.phase == "Blocked"
    world.gates = [GateResult("leakage", True, "clean")]
    world.tick()
    assert world.status.phase == "Warming"


def test_manual_promotion_waits_after_the_last_step_until_promoted() -> None:
    spec = spec_dict()
    spec["strategy"] = {**spec["strategy"], "promotion": {"mode": "manual"}}
    world = World(ModelRolloutSpec.model_validate(spec))
    world.bootstrap()
    world.set_version("v2")
    world.run_until(lambda w: "waiting for `kubectl modelrollout promote`" in w.status.message)
    for _ in range(5):
        world.tick()
        assert world.status.phase == "Canary"
    assert condition(world, "Progressing") == ("True", "AwaitingPromotion")
    world.commands = Commands(promote="p1")
    world.run_until(lambda w: w.status.phase == "Succeeded", limit=5)
    assert world.status.acknowledged.promote == "p1"


def test_promote_advances_one_step_or_all_with_full() -> None:
    world = rolled_out_world()
    world.run_until(lambda w: w.status.phase == "Shadow")
    world.commands = Commands(promote="a")
    world.tick()
    assert (world.status.phase, world.status.step) == ("Canary", 1)
    world.commands = Commands(promote="b", promote_full=True)
    world.tick()
    assert world.status.phase == "Succeeded"
    assert [d.reason for d in world.status.history][-2:] == ["ManualPromotion", "Promoted"]


def test_pause_holds_traffic_but_a_failure_still_rolls_back() -> None:
    world = rolled_out_world()
    world.run_until(lambda w: w.status.phase == "Canary")
    world.commands = Commands(paused=True)
    world.tick()
    assert world.status.phase == "Paused"
    weights = world.routes
    for _ in range(10):
        world.tick()
        assert world.status.phase == "Paused"
        assert world.routes == weights
    world.commands = Commands(paused=False)
    world.tick()
    assert world.status.phase == "Canary"
    world.commands = Commands(paused=True)
    world.tick()
    world.script = lambda w: verdicts(w.spec, w.now, {"ios": "Fail"})
    world.tick()
    assert world.status.phase == "RolledBack"


def test_resume_and_promote_read_in_one_tick_both_act() -> None:
    # Resume then Promote clicked quickly (Argo CD actions, or the plugin) reach one tick together.
    world = rolled_out_world()
    world.run_until(lambda w: w.status.phase == "Shadow")
    world.commands = Commands(paused=True)
    world.tick()
    assert world.status.phase == "Paused"
    world.commands = Commands(paused=False, promote="p1")
    world.tick()
    assert (world.status.phase, world.status.step) == ("Canary", 1)
    assert "PromoteIgnored" not in [d.reason for d in world.status.history]


def test_abort_rolls_back_once() -> None:
    world = rolled_out_world()
    world.run_until(lambda w: w.status.phase == "Shadow")
    world.commands = Commands(abort="x1")
    world.tick()
    assert world.status.phase == "RolledBack"
    assert world.status.history[-1].reason == "Aborted"
    world.tick()
    assert world.status.history[-1].reason == "Aborted"
    assert world.routes is not None
    assert world.routes.candidate is None


def test_a_steady_pause_writes_no_routes() -> None:
    spec = spec_dict()
    spec["strategy"] = {"canary": {"steps": [{"weight": 10, "pause": "5m"}]}}
    world = World(ModelRolloutSpec.model_validate(spec))
    world.bootstrap()
    world.set_version("v2")
    world.run_until(lambda w: w.status.phase == "Canary")
    world.tick()
    writes = world.route_writes
    for _ in range(20):
        world.tick()
    assert world.route_writes == writes


def test_a_template_that_cannot_make_a_pod_blocks_with_the_field_and_recovers_when_fixed() -> None:
    world = World(make_spec(template={"spec": {"containers": [{"name": "server"}]}}))
    world.tick()
    assert world.status.phase == "Blocked"
    assert world.status.message == "invalid template: spec.template.spec.containers[0].image: required"
    assert world.deployments == {}
    world.spec = make_spec()
    world.bootstrap()
    assert world.status.stable_version == "v1"


def test_undo_to_the_warm_previous_version_switches_back_at_once() -> None:
    world = rolled_out_world(rollback={"keepPreviousWarm": "5m"})
    world.run_until(lambda w: w.status.phase == "Succeeded" and w.status.stable_version == "v2")
    world.set_version("v1")
    world.tick()
    world.tick()
    assert world.status.phase == "Succeeded"
    assert world.status.stable_version == "v1"
    assert world.status.previous_version == "v2"
    assert [d.reason for d in world.status.history][-2:] == ["Undo", "Promoted"]
    assert world.routes == SetRoutes(
        stable="v1", candidate=None, weights=dict.fromkeys(SLICES, 0), mirror_percent=None
    )


def test_undo_after_the_warm_window_is_a_normal_rollout() -> None:
    world = rolled_out_world(rollback={"keepPreviousWarm": "10s"})
    world.run_until(lambda w: w.status.phase == "Succeeded" and w.status.stable_version == "v2")
    world.run_until(lambda w: "v1" not in w.deployments, limit=10)
    world.set_version("v1")
    world.tick()
    assert world.status.phase == "Warming"
    assert world.status.history[-1].reason == "Deploying"


def test_retry_starts_a_rolled_back_version_again_and_acts_once() -> None:
    world = rolled_out_world()
    world.run_until(lambda w: w.status.phase == "Canary")
    world.script = lambda w: verdicts(w.spec, w.now, {"ios": "Fail"})
    world.tick()
    assert world.status.phase == "RolledBack"
    world.script = None
    world.commands = Commands(retry="r1")
    world.tick()
    assert "Retry" in [d.reason for d in world.status.history[-3:]]
    assert world.status.candidate_version == "v2"
    world.run_until(lambda w: w.status.phase == "Succeeded")
    assert world.status.stable_version == "v2"
    assert world.status.acknowledged.retry == "r1"
    assert [d.reason for d in world.status.history].count("Retry") == 1


def test_retry_is_ignored_when_nothing_failed() -> None:
    world = rolled_out_world()
    world.run_until(lambda w: w.status.phase == "Shadow")
    world.commands = Commands(retry="r1")
    actions = world.tick()
    assert world.status.phase == "Shadow"
    assert any(isinstance(a, Event) and a.reason == "RetryIgnored" for a in actions)


def test_rollback_safety_is_unknown_when_no_schema_is_declared() -> None:
    world = World(make_spec())
    world.bootstrap()
    world.set_version("v2")
    world.tick()
    assert condition(world, "RollbackSafe") == ("Unknown", "SchemaNotDeclared")
    safe = next(c for c in world.status.conditions if c.type == "RollbackSafe")
    assert "could not be checked" in safe.message


def test_rollback_safety_is_true_only_when_both_schemas_were_compared() -> None:
    schema = {"version": 1, "features": [{"name": "user_id", "type": "string"}]}
    world = World(
        make_spec(model={"name": "recommender", "version": "v1", "uri": "s3://x/v1", "schema": schema})
    )
    world.bootstrap()
    world.set_version("v2", schema=schema)
    world.tick()
    assert condition(world, "RollbackSafe") == ("True", "SchemaCompatible")
