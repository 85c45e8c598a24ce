"""Planner invariants under random verdicts and random model-load capacity (hypothesis)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from modelrollout.api.status import ModelRolloutStatus, Verdict
from modelrollout.plan import SetRoutes, capacity_weight, plan
from tests.support.world import World, make_spec, verdicts

# Mostly passing and mostly fully loaded, so that runs reach every step and still see every kind of trouble.
VERDICT = st.sampled_from(["Pass"] * 12 + ["Inconclusive"] * 3 + ["Fail"])
READY = st.sampled_from([4, 4, 4, 3, 2, 1, 0])
TICK = st.tuples(st.fixed_dictionaries({"ios": VERDICT, "android": VERDICT, "default": VERDICT}), READY)


def started_world() -> World:
    world = World(make_spec())
    world.bootstrap()
    world.set_version("v2")
    return world


@settings(max_examples=300, deadline=None)
@given(st.lists(TICK, min_size=1, max_size=60))
def test_weights_never_exceed_ready_capacity_and_nothing_advances_without_every_slice_passing(
    ticks: list[tuple[dict[str, Verdict], int]],
) -> None:
    world = started_world()
    for per_slice, ready in ticks:
        world.ready_cap["v2"] = ready
        world.script = lambda w, per_slice=per_slice: verdicts(w.spec, w.now, per_slice)  # type: ignore[misc]
        before = (world.status.phase, world.status.step)
        observations = world.observations()
        result = plan(world.spec, world.status, observations)
        routes = [a for a in result.actions if isinstance(a, SetRoutes)]
        candidate = observations.workloads.get("v2")
        capacity = capacity_weight(world.spec, candidate.ready_replicas if candidate else 0)
        for route in routes:
            if route.candidate is not None:
                assert max(route.weights.values()) <= capacity
        after = (result.status.phase, result.status.step)
        judged = observations.analysis
        if judged is not None and any(v.verdict != "Pass" for v in judged.slices.values()):
            advanced = (before[0] == "Shadow" and after[0] == "Canary") or (
                before[0] == "Canary" and (after[0] == "Promoting" or after[1] > before[1])
            )
            assert not advanced, f"advanced {before} -> {after} on a tick with a non-Pass slice"
        world.status = result.status
        world.tick_apply(result.actions)


@settings(max_examples=60, deadline=None)
@given(st.lists(TICK, min_size=1, max_size=50))
def test_restarting_from_the_stored_status_changes_nothing(
    ticks: list[tuple[dict[str, Verdict], int]],
) -> None:
    live, restarted = started_world(), started_world()
    for per_slice, ready in ticks:
        for world in (live, restarted):
            world.ready_cap["v2"] = ready
            world.script = lambda w, per_slice=per_slice: verdicts(w.spec, w.now, per_slice)  # type: ignore[misc]
        restarted.status = ModelRolloutStatus.model_validate(restarted.status.wire())
        live_actions = live.tick()
        restarted_actions = restarted.tick()
        assert live_actions == restarted_actions
        assert live.status.wire() == restarted.status.wire()
