"""Argo CD's health of a blue-green rollout, computed by Argo CD's own code (argo-cd v3.2.12's util/lua, reading
the argocd-cm example) on live objects the real planner produced."""

from __future__ import annotations

from typing import Any

import pytest

from modelrollout.plan import Commands
from tests.support.rollout_states import live_object
from tests.support.verdicts import Verdict, argocd_health, argocd_health_all
from tests.support.world import World, make_spec, verdicts

pytestmark = pytest.mark.integration


def blue_green_world(**strategy: object) -> World:
    world = World(make_spec(strategy={"blueGreen": {"bake": "20s"}, **strategy}))
    world.bootstrap()
    world.set_version("v2")
    return world


def health(world: World) -> Verdict:
    return argocd_health(live_object(world))


def phases_and_health(world: World, until: str, limit: int = 200) -> list[tuple[str | None, str]]:
    """Ticks until the phase is `until`; each distinct (phase, Argo CD health) in order."""
    objects: list[dict[str, Any]] = []
    for _ in range(limit):
        world.tick()
        objects.append(live_object(world))
        if world.status.phase == until:
            break
    else:
        raise AssertionError(f"{until} not reached: {world.status.phase} {world.status.message}")
    seen: list[tuple[str | None, str]] = []
    for obj, answer in zip(objects, argocd_health_all(objects), strict=True):
        state = (obj["status"].get("phase"), answer.status)
        if not seen or seen[-1] != state:
            seen.append(state)
    return seen


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
    answer = health(world)
    assert (world.status.phase, answer.status) == ("RolledBack", "Degraded")
    assert answer.message.startswith("slice ios")


def test_a_preview_waiting_for_the_manual_switch_is_suspended() -> None:
    world = blue_green_world(promotion={"mode": "manual"})
    world.run_until(lambda w: w.status.phase == "Preview")
    world.run_until(lambda w: "waiting for `kubectl modelrollout promote`" in w.status.message)
    assert health(world).status == "Suspended"
    world.commands = Commands(promote="p1")
    world.tick()
    assert (world.status.phase, health(world).status) == ("Baking", "Progressing")
