"""Blue-green in the planner: full readiness before the switch, one switch, a judged bake, one switch back."""

from __future__ import annotations

from typing import Any

from modelrollout.plan import Commands, EnsureWorkload, RemoveWorkload, SetRoutes, analysis_request
from tests.support.world import World, make_spec, verdicts

SLICES = ["ios", "android", "default"]
BLUE_GREEN: dict[str, Any] = {"blueGreen": {"bake": "20s"}}


def blue_green_world(strategy: dict[str, Any] | None = None, **overrides: Any) -> World:
    world = World(make_spec(strategy=strategy or BLUE_GREEN, **overrides))
    world.bootstrap()
    world.set_version("v2")
    return world


def scaled(world: World, version: str) -> int | None:
    """Replicas the last tick asked for a version (None: not ensured)."""
    return next(
        (a.replicas for a in world.actions if isinstance(a, EnsureWorkload) and a.version == version), None
    )


def test_healthy_blue_green_previews_switches_every_slice_once_bakes_and_promotes() -> None:
    world = blue_green_world()
    seen: list[tuple[str | None, int]] = []
    writes_at_switch = None
    while world.status.stable_version != "v2":
        before = world.status.phase
        world.tick()
        if before == "Preview" and world.status.phase == "Baking":
            writes_at_switch = world.route_writes
            assert world.routes == SetRoutes(
                stable="v1", candidate="v2", weights=dict.fromkeys(SLICES, 100), mirror_percent=None
            )
        state = (world.status.phase, world.status.canary_weight)
        if not seen or seen[-1] != state:
            seen.append(state)
        assert len(seen) < 10
    assert seen == [("Warming", 0), ("Preview", 0), ("Baking", 100), ("Succeeded", 0)]
    reasons = [d.reason for d in world.status.history]
    assert reasons[-4:] == ["Deploying", "PreviewStarted", "Switched", "BakePassed"]
    assert writes_at_switch is not None
    assert world.status.previous_version == "v1"
    assert world.status.previous_warm_until is not None


def test_the_switch_waits_for_every_replica_not_min_ready_replicas() -> None:
    world = blue_green_world()
    world.ready_cap["v2"] = 3  # minReadyReplicas is 2, replicas 4
    world.run_until(lambda w: w.status.phase == "Preview")
    for _ in range(10):
        world.tick()
        assert world.status.phase == "Preview"
        assert world.routes is not None
        assert set(world.routes.weights.values()) == {0}, "a user reached a candidate that is not fully ready"
        assert scaled(world, "v2") == 4, "the candidate is not asked for at full size"
    assert "3 of 4 replicas model-ready" in world.status.message
    world.ready_cap["v2"] = 4
    world.tick()
    assert world.status.phase == "Baking"
    assert world.routes is not None
    assert world.routes.weights == dict.fromkeys(SLICES, 100)


def test_a_candidate_never_fully_ready_within_load_timeout_rolls_back_before_any_switch() -> None:
    world = blue_green_world()
    world.ready_cap["v2"] = 2
    world.run_until(lambda w: w.status.phase == "RolledBack", limit=30)
    assert world.status.history[-1].reason == "CandidateNotReady"
    assert "had 2 of 4 required model-ready replicas" in world.status.message
    assert all(d.phase != "Baking" for d in world.status.history)


def test_a_failure_in_the_bake_switches_every_slice_back_in_one_write_with_stable_still_full() -> None:
    world = blue_green_world()
    world.run_until(lambda w: w.status.phase == "Baking")
    for _ in range(2):
        world.tick()
        assert scaled(world, "v1") == 4, "stable must stay fully scaled during the bake"
    writes = world.route_writes
    world.script = lambda w: verdicts(w.spec, w.now, {"android": "Fail"})
    world.tick()
    assert world.status.phase == "RolledBack"
    assert world.route_writes == writes + 1
    assert world.routes == SetRoutes(
        stable="v1", candidate=None, weights=dict.fromkeys(SLICES, 0), mirror_percent=None
    )
    assert world.status.message.startswith("slice android:")
    assert world.status.stable_version == "v1"


def test_the_bake_judges_with_stable_read_from_the_window_before_the_switch() -> None:
    world = blue_green_world()
    world.run_until(lambda w: w.status.phase == "Baking")
    switched = world.status.switched_at
    assert switched is not None
    request = analysis_request(world.status, world.now)
    assert request is not None
    assert (request.phase, request.since, request.baseline_at) == ("canary", switched, switched)
    preview = blue_green_world()
    preview.run_until(lambda w: w.status.phase == "Preview")
    assert analysis_request(preview.status, preview.now) is None, "preview traffic is never analysed"


def test_the_bake_lasts_until_every_slice_has_passed_for_the_bake_duration() -> None:
    world = blue_green_world()
    world.run_until(lambda w: w.status.phase == "Baking")
    switched = world.status.switched_at
    assert switched is not None
    world.run_until(lambda w: w.status.stable_version == "v2")
    assert (world.now - switched).total_seconds() >= 20


def test_the_previous_fleet_is_scaled_down_only_after_keep_previous_warm() -> None:
    world = blue_green_world(rollback={"keepPreviousWarm": "30s"})
    world.run_until(lambda w: w.status.stable_version == "v2")
    promoted = world.now
    removed_at = None
    for _ in range(12):
        world.tick()
        if any(isinstance(a, RemoveWorkload) and a.version == "v1" for a in world.actions):
            removed_at = world.now
            break
    assert removed_at is not None
    assert (removed_at - promoted).total_seconds() >= 30


def test_preview_route_and_duration_come_before_the_switch() -> None:
    strategy = {"blueGreen": {"bake": "10s", "preview": {"header": "x-preview", "duration": "30s"}}}
    world = blue_green_world(strategy)
    world.run_until(lambda w: w.status.phase == "Preview")
    entered = world.now
    world.tick()
    assert world.routes is not None
    assert (world.routes.candidate, world.routes.preview) == ("v2", True)
    assert set(world.routes.weights.values()) == {0}
    world.run_until(lambda w: w.status.phase == "Baking")
    assert (world.now - entered).total_seconds() >= 30
    world.tick()
    assert world.routes is not None
    assert world.routes.preview is False, "the preview route outlived the switch"


def test_manual_promotion_waits_for_a_person_and_never_switches_before_full_readiness() -> None:
    world = blue_green_world({**BLUE_GREEN, "promotion": {"mode": "manual"}})
    world.ready_cap["v2"] = 3
    world.run_until(lambda w: w.status.phase == "Preview")
    world.commands = Commands(promote="p1")
    world.tick()
    assert world.status.phase == "Preview", "a promote must not switch to a fleet that is not fully ready"
    assert any(getattr(a, "reason", "") == "PromoteIgnored" for a in world.actions)
    world.ready_cap["v2"] = 4
    for _ in range(5):
        world.tick()
        assert world.status.phase == "Preview"
    assert world.status.history[-1].reason == "AwaitingPromotion"
    assert next(c for c in world.status.conditions if c.type == "Progressing").reason == "AwaitingPromotion"
    world.commands = Commands(promote="p2")
    world.tick()
    assert world.status.phase == "Baking"
    assert world.status.history[-1].reason == "ManualPromotion"


def test_shadow_comes_first_when_declared() -> None:
    world = blue_green_world({"shadow": {"duration": "10s"}, **BLUE_GREEN})
    phases = []
    world.run_until(lambda w: (phases.append(w.status.phase), w.status.phase == "Baking")[1])
    assert "Shadow" in phases
    assert phases.index("Shadow") < phases.index("Preview")


def test_a_pause_in_the_bake_holds_the_switch_and_guards_still_roll_back() -> None:
    world = blue_green_world()
    world.run_until(lambda w: w.status.phase == "Baking")
    world.commands = Commands(paused=True)
    for _ in range(8):
        world.tick()
        assert world.status.phase == "Paused"
        assert world.routes is not None
        assert world.routes.weights == dict.fromkeys(SLICES, 100)
    world.script = lambda w: verdicts(w.spec, w.now, {"ios": "Fail"})
    world.tick()
    assert world.status.phase == "RolledBack"


def test_qa_override_reaches_a_model_ready_candidate_in_every_phase_until_the_end() -> None:
    strategy = {**BLUE_GREEN, "qaOverride": {"header": "x-canary-override"}}
    world = blue_green_world(strategy)
    world.load_ticks = 2
    routed: dict[str, bool] = {}
    while world.status.stable_version != "v2":
        world.tick()
        assert world.routes is not None
        phase = world.status.phase or ""
        routed[phase] = routed.get(phase, False) or world.routes.qa
        if world.routes.qa:
            assert world.routes.candidate == "v2"
            assert world.workloads()["v2"].ready_replicas >= 2, "QA requests reached a cold candidate"
    assert routed == {"Warming": False, "Preview": True, "Baking": True, "Succeeded": False}


def test_qa_override_routes_in_canary_and_shadow_too() -> None:
    world = World(
        make_spec(
            strategy={
                "shadow": {"duration": "10s"},
                "canary": {"steps": [{"weight": 10}]},
                "qaOverride": {"header": "x-canary-override"},
            }
        )
    )
    world.bootstrap()
    world.set_version("v2")
    qa_phases = set()
    while world.status.stable_version != "v2":
        world.tick()
        assert world.routes is not None
        if world.routes.qa:
            qa_phases.add(world.status.phase)
    assert {"Shadow", "Canary"} <= qa_phases
