"""Argo CD's health of a blue-green rollout, from the chart's Lua script run in Lua 5.1 as Argo CD runs it."""

from __future__ import annotations

from modelrollout.plan import Commands
from tests.support.world import World, make_spec, verdicts
from tests.unit.charts.test_argocd import health, phases_and_health


def blue_green_world(**strategy: object) -> World:
    world = World(make_spec(strategy={"blueGreen": {"bake": "20s"}, **strategy}))
    world.bootstrap()
    world.set_version("v2")
    return world


def test_a_blue_green_progresses_through_preview_and_bake_then_is_healthy() -> None:
    world = blue_green_world()
    assert phases_and_health(world, "Succeeded") == [
        ("Warming", "Progressing"),
        ("Preview", "Progressing"),
        ("Baking", "Progressing"),
        ("Succeeded", "Healthy"),
    ]


def test_a_switch_back_in_the_bake_is_degraded() -> None:
    world = blue_green_world()
    world.run_until(lambda w: w.status.phase == "Baking")
    world.script = lambda w: verdicts(w.spec, w.now, {"ios": "Fail"})
    world.tick()
    status, message = health(world)
    assert (world.status.phase, status) == ("RolledBack", "Degraded")
    assert message.startswith("slice ios")


def test_a_preview_waiting_for_the_manual_switch_is_suspended() -> None:
    world = blue_green_world(promotion={"mode": "manual"})
    world.run_until(lambda w: w.status.phase == "Preview")
    world.run_until(lambda w: "waiting for `kubectl modelrollout promote`" in w.status.message)
    assert health(world)[0] == "Suspended"
    world.commands = Commands(promote="p1")
    world.tick()
    assert (world.status.phase, health(world)[0]) == ("Baking", "Progressing")
