"""A/B experiments in the planner: arm routes, guardrails, and each pre-registered outcome."""

from __future__ import annotations

from typing import Any

import pytest

from modelrollout.plan import SetRoutes
from tests.support.world import World, conversions, make_spec, verdicts

SLICES = ["ios", "android", "default"]


def experiment(**fields: Any) -> dict[str, Any]:
    return {
        "experiment": {
            "assignment": {"header": "x-user-id"},
            "metric": {"successes": "model_conversions_total"},
            "minimumDetectableEffect": 0.1,
            "baselineRate": 0.1,
            "maxDuration": "1h",
            **fields,
        }
    }


def ab_world(rates: dict[str, tuple[float, float]], **fields: Any) -> World:
    world = World(make_spec(strategy=experiment(**fields)))
    world.bootstrap()
    world.set_version("v2")
    world.experiment = conversions(rates)
    return world


def same(p: float) -> dict[str, tuple[float, float]]:
    return dict.fromkeys(SLICES, (p, p))


def reasons(world: World) -> list[str]:
    return [d.reason for d in world.status.history]


def test_a_candidate_better_on_every_slice_is_promoted_with_its_effect_and_interval() -> None:
    world = ab_world(dict.fromkeys(SLICES, (0.10, 0.11)))
    world.run_until(lambda w: w.status.phase == "Experiment")
    world.tick()
    assert world.routes == SetRoutes(
        stable="v1", candidate="v2", weights=dict.fromkeys(SLICES, 0), mirror_percent=None, experiment=True
    )
    world.run_until(lambda w: w.status.stable_version == "v2")
    assert reasons(world)[-3:] == ["ExperimentStarted", "ExperimentBetter", "Promoted"]
    result = world.status.experiment
    assert result is not None
    assert result.overall is not None
    assert result.overall.direction == "better"
    assert result.overall.effect == pytest.approx(0.10)
    assert result.overall.low is not None
    assert result.overall.high is not None
    assert result.overall.low < 0.10 < result.overall.high
    assert result.overall.low > 0
    assert {e.slice for e in result.slices} == set(SLICES)
    assert result.planned_trials_per_arm == 14749
    assert result.warning == ""
    assert "overall +10.0%" in world.status.history[-2].message
    assert world.status.stable_version == "v2"


def test_no_difference_keeps_stable_at_the_sample_cap() -> None:
    world = ab_world(same(0.10), maxTrialsPerArm=30000)
    world.run_until(lambda w: w.status.phase == "RolledBack")
    assert reasons(world)[-1] == "NoDifference"
    assert world.status.stable_version == "v1"
    result = world.status.experiment
    assert result is not None
    assert result.outcome == "NoDifference"
    assert result.progress == 1.0
    assert result.overall is not None
    assert result.overall.stable_trials >= 30000


def test_ship_unless_worse_promotes_when_no_difference_is_found() -> None:
    world = ab_world(same(0.10), maxTrialsPerArm=30000, onNoDifference="promote")
    world.run_until(lambda w: w.status.stable_version == "v2")
    assert "ShipUnlessWorse" in reasons(world)


def test_no_difference_at_max_duration_keeps_stable() -> None:
    world = ab_world(same(0.10), maxDuration="30s")
    world.experiment = conversions(same(0.10), per_tick=10)
    world.run_until(lambda w: w.status.phase == "RolledBack")
    assert reasons(world)[-1] == "NoDifference"
    assert "maxDuration 30s" in world.status.history[-1].message


def test_a_worse_candidate_is_rolled_back() -> None:
    world = ab_world(dict.fromkeys(SLICES, (0.10, 0.085)))
    world.run_until(lambda w: w.status.phase == "RolledBack")
    assert reasons(world)[-1] == "ExperimentWorse"


WINS_BUT_LOSES_ON_ANDROID = {"ios": (0.10, 0.13), "android": (0.10, 0.08), "default": (0.10, 0.13)}


def test_better_overall_but_worse_on_a_slice_is_rolled_back_with_the_simpson_warning() -> None:
    world = ab_world(WINS_BUT_LOSES_ON_ANDROID)
    world.run_until(lambda w: w.status.phase == "RolledBack")
    assert reasons(world)[-1] == "ExperimentWorseOnSlice"
    message = world.status.history[-1].message
    assert "worse on slice android" in message
    assert "Simpson" in message
    result = world.status.experiment
    assert result is not None
    android = next(e for e in result.slices if e.slice == "android")
    assert android.direction == "worse"


def test_deciding_on_the_overall_effect_promotes_and_still_warns() -> None:
    world = ab_world(WINS_BUT_LOSES_ON_ANDROID, decideOn="overall")
    world.run_until(lambda w: w.status.stable_version == "v2")
    assert "ExperimentBetter" in reasons(world)
    decided = next(d for d in world.status.history if d.reason == "ExperimentBetter")
    assert "android" in decided.message
    assert "Simpson" in decided.message


def test_a_guardrail_breach_rolls_back_on_the_first_failing_interval() -> None:
    world = ab_world(dict.fromkeys(SLICES, (0.10, 0.11)))
    world.run_until(lambda w: w.status.phase == "Experiment")
    world.script = lambda w: verdicts(w.spec, w.now, {"android": "Fail"})
    world.tick()
    assert world.status.phase == "RolledBack"
    assert reasons(world)[-1] == "GuardFailed"
    assert world.routes is not None
    assert world.routes.candidate is None
    assert not world.routes.experiment


def test_no_verdict_while_the_metric_cannot_be_read() -> None:
    world = ab_world(same(0.10))
    world.run_until(lambda w: w.status.phase == "Experiment")
    world.experiment = lambda w: "successes query failed: timeout"
    for _ in range(5):
        world.tick()
    assert world.status.phase == "Experiment"
    assert "metric unavailable" in world.status.message
