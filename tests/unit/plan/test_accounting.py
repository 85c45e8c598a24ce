"""Failure accounting: failureLimit counts a guard's failing evaluations over the whole stage.

A Pass or an Inconclusive evaluation between two failures does not reset the count, a slice that gets no
verdict at all (a starved candidate) keeps it, and a new stage (shadow, each canary step) starts from zero.
"""

from __future__ import annotations

from modelrollout.analysis.results import AnalysisResult
from modelrollout.api.spec import ModelRolloutSpec
from modelrollout.api.status import Verdict
from tests.support.world import World, spec_dict, verdicts


def canary_world(failure_limit: int = 2) -> World:
    spec = spec_dict()
    spec["analysis"]["guards"] = [
        {"name": "error-ratio", "metric": "errorRate", "maxRatioToStable": 1.5, "failureLimit": failure_limit}
    ]
    world = World(ModelRolloutSpec.model_validate(spec))
    world.bootstrap()
    world.set_version("v2")
    world.run_until(lambda w: w.status.phase == "Canary")
    return world


def scripted(world: World, pattern: list[Verdict | None], slice_name: str = "android") -> list[str | None]:
    """Ticks once per entry: the slice gets that verdict (None: no verdict for it at all); phases seen."""
    entries = iter(pattern)

    def script(w: World) -> AnalysisResult:
        verdict = next(entries)
        result = verdicts(w.spec, w.now, {slice_name: verdict or "Pass"})
        if verdict is None:
            del result.slices[slice_name]  # Prometheus had no series for the slice: nothing was judged
        return result

    world.script = script
    phases = []
    for _ in pattern:
        world.tick()
        phases.append(world.status.phase)
    return phases


def test_fail_and_inconclusive_alternating_is_caught() -> None:
    world = canary_world()
    phases = scripted(world, ["Fail", "Inconclusive", "Fail"])
    assert phases == ["Canary", "Canary", "RolledBack"], "an Inconclusive evaluation reset the count"
    assert world.status.history[-1].reason == "GuardFailed"


def test_a_starved_candidate_keeps_its_count() -> None:
    world = canary_world()
    phases = scripted(world, ["Fail", None, None, "Fail"])
    assert phases == ["Canary", "Canary", "Canary", "RolledBack"], "no verdict at all reset the count"
    android = next(s for s in world.status.slices if s.name == "android")
    assert android.verdict == "Fail"


def test_a_slice_without_a_verdict_shows_the_count_it_keeps() -> None:
    world = canary_world(failure_limit=3)
    scripted(world, ["Fail", None])
    android = next(s for s in world.status.slices if s.name == "android")
    assert android.verdict == "Inconclusive"
    assert [(g.name, g.verdict, g.failures) for g in android.guards] == [("error-ratio", "Inconclusive", 1)]


def test_a_new_stage_counts_afresh() -> None:
    world = canary_world()
    scripted(world, ["Fail", "Pass", "Pass", "Pass"])  # the 10s pause passes after the failure
    assert (world.status.phase, world.status.step) == ("Canary", 2)
    assert all(g.failures == 0 for item in world.status.slices for g in item.guards)
    assert scripted(world, ["Fail"]) == ["Canary"], "step 1's failure does not count in step 2"
    assert scripted(world, ["Fail"]) == ["RolledBack"]


def test_inconclusive_evaluations_are_counted_over_the_stage() -> None:
    spec = spec_dict()
    spec["analysis"] = {**spec["analysis"], "onInconclusive": "fail", "maxInconclusive": 3}
    world = World(ModelRolloutSpec.model_validate(spec))
    world.bootstrap()
    world.set_version("v2")
    world.run_until(lambda w: w.status.phase == "Canary")
    phases = scripted(world, ["Inconclusive", "Pass", "Inconclusive", "Pass", "Inconclusive"])
    assert phases == ["Canary"] * 4 + ["RolledBack"]
    assert "in 3 evaluations of this stage" in world.status.message


def test_a_status_written_by_an_earlier_version_is_read() -> None:
    from modelrollout.api.status import GuardVerdict

    old = {"name": "g", "metric": "errorRate", "verdict": "Fail", "consecutiveFailures": 2}
    assert GuardVerdict.model_validate(old).failures == 2
