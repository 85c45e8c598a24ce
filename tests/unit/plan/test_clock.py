"""Times in the status written by a clock ahead of this one: analysis goes on, no pause is cut short.

A status carries times another operator pod wrote (lastAnalysis, stepSince, passingSince). When that pod's
clock ran ahead, those times lie in this pod's future; the planner counts them from its own `now` instead
(a pause restarts: longer than asked, never shorter). The controller's side of the design — every pod times
decisions by the API server's clock — is tested in tests/unit/controller/test_clock.py.
"""

from __future__ import annotations

from datetime import timedelta

from tests.support.world import World, make_spec

AHEAD = timedelta(hours=1)


def canary_world() -> World:
    world = World(make_spec())
    world.bootstrap()
    world.set_version("v2")
    world.run_until(lambda w: w.status.phase == "Canary")
    return world


def written_by_a_clock_ahead(world: World) -> None:
    """The status as a pod whose clock ran an hour ahead left it."""
    s = world.status
    s.last_analysis = world.now + AHEAD
    s.step_since = world.now + AHEAD
    for item in s.slices:
        item.passing_since = world.now + AHEAD


def test_an_analysis_time_from_a_clock_ahead_does_not_stop_analysis() -> None:
    world = canary_world()
    written_by_a_clock_ahead(world)
    calls = world.analysis_calls
    world.tick()
    assert world.analysis_calls == calls + 1, "analysis waited for this clock to reach the other pod's"
    assert world.status.last_analysis is not None
    assert world.status.last_analysis <= world.now


def test_a_step_begun_by_a_clock_ahead_advances_after_its_pause_from_now() -> None:
    world = canary_world()
    written_by_a_clock_ahead(world)
    resumed = world.now
    world.run_until(lambda w: w.status.step == 2, limit=10)
    waited = (world.status.step_since - resumed).total_seconds()  # type: ignore[operator]
    assert 10 <= waited <= 20, f"step 2 began {waited}s after the takeover; the pause is 10s"


def test_times_in_the_future_are_brought_back_to_now_and_recorded() -> None:
    world = canary_world()
    written_by_a_clock_ahead(world)
    world.tick()
    s = world.status
    assert s.step_since is not None
    assert s.step_since <= world.now
    assert all(i.passing_since is None or i.passing_since <= world.now for i in s.slices)
