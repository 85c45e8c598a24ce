"""`kubectl modelrollout status` of a blue-green rollout: the strategy, where the switch is, the QA route."""

from __future__ import annotations

from modelrollout.cli import view
from tests.support.rollouts import analysis, body, judged
from tests.support.world import World, make_spec

STRATEGY = {
    "blueGreen": {"bake": "20s", "preview": {"header": "x-preview"}},
    "qaOverride": {"header": "x-canary-override"},
}


def world_in(phase: str, ready: int = 4) -> World:
    world = World(make_spec(strategy=STRATEGY, analysis=analysis()))
    world.bootstrap()
    world.set_version("v2")
    world.script = judged
    world.ready_cap["v2"] = ready
    world.run_until(lambda w: w.status.phase == phase)
    return world


def row(text: str, label: str) -> str:
    found = next(line for line in text.splitlines() if line.startswith(label))
    return found[len(label) :].strip()


def test_before_the_switch_it_says_what_the_switch_waits_for() -> None:
    world = world_in("Preview", ready=3)
    world.tick()
    text = view.render_text(body(world), world.now)
    assert row(text, "Strategy") == "blue-green (bake 20s, preview x-preview=true)"
    assert row(text, "Switch") == "not yet: every slice switches once all 4 v2 replicas are model-ready"
    assert row(text, "QA route") == "x-canary-override=true -> v2 (not analysed)"
    assert row(text, "Message:") == "v2 has 3 of 4 replicas model-ready: the switch waits for all of them"


def test_in_the_bake_it_shows_the_switch_time_and_what_stable_is_compared_with() -> None:
    world = world_in("Baking")
    world.tick()
    text = view.render_text(body(world), world.now)
    switch = row(text, "Switch")
    assert switch.startswith("every slice on v2 since ")
    assert "baking 10s of 20s (at least 10s left)" in switch
    assert switch.endswith("relative guards compare with v1's window before it")
    assert "ios      100%    Pass" in text
