"""Real planner statuses for the CLI tests: the pure World driven through a rollout, judged by the real judges."""

from __future__ import annotations

from typing import Any

from modelrollout.analysis.judges import judge_thresholds, ratio_floor, required_samples
from modelrollout.analysis.results import AnalysisResult, SliceVerdict
from modelrollout.analysis.verdicts import slice_verdict
from modelrollout.api.status import Samples
from tests.support.world import World, make_spec, spec_dict

NAME, NAMESPACE = "recommender", "ml"
STABLE_ERRORS = 0.011
SAMPLES = Samples(stable=1200, canary=400)


def analysis() -> dict[str, Any]:
    base = spec_dict()["analysis"]
    base["guards"] = [
        {"name": "error-rate", "metric": "errorRate", "max": 0.05, "immediate": True},
        {
            "name": "error-ratio",
            "metric": "errorRate",
            "maxRatioToStable": 1.5,
            "failureLimit": 2,
            "slices": {"android": {"maxRatioToStable": 1.05}},
        },
    ]
    return base


def judged(world: World, canary_errors: dict[str, float] | None = None) -> AnalysisResult:
    """Every guard judged by the real threshold judges on per-slice error rates (0.01 unless named)."""
    spec, errors = world.spec, canary_errors or {}
    slices = {}
    for name in spec.slice_names():
        guards = [
            judge_thresholds(
                guard,
                guard.thresholds_for(name),
                canary=errors.get(name, 0.01),
                stable=STABLE_ERRORS,
                samples=SAMPLES,
                min_samples=required_samples(spec.analysis, guard, name),
                floor=ratio_floor(guard.metric, SAMPLES.stable),
            )
            for guard in spec.analysis.guards
        ]
        slices[name] = SliceVerdict(name=name, verdict=slice_verdict(guards), samples=SAMPLES, guards=guards)
    return AnalysisResult(slices=slices, queries=2, errors=[], evaluated_at=world.now)


def rolling_world() -> World:
    """v1 stable, v2 rolling out, judged healthy on every slice."""
    world = World(make_spec(analysis=analysis()))
    world.bootstrap()
    world.set_version("v2")
    world.script = judged
    return world


def body(world: World, **metadata: Any) -> dict[str, Any]:
    """The object as the API server would return it."""
    meta = {"name": NAME, "namespace": NAMESPACE, "generation": world.generation, **metadata}
    return {
        "apiVersion": "modelrollout.io/v1alpha1",
        "kind": "ModelRollout",
        "metadata": meta,
        "spec": world.spec.wire(),
        "status": world.status.wire(),
    }
