"""An A/B experiment through the real controller tick: arm routes in the VirtualService, the metric's counters
read from Prometheus since the experiment began, and the verdict in the status."""

from __future__ import annotations

from tests.support.controller import Harness

SLICES = ["ios", "android", "default"]
EXPERIMENT = {
    "experiment": {
        "assignment": {"header": "x-user-id"},
        "metric": {"successes": "model_conversions_total"},
        "minimumDetectableEffect": 0.1,
        "baselineRate": 0.1,
    }
}


async def test_a_better_candidate_is_promoted_from_counters_read_since_the_experiment_began() -> None:
    h = Harness()
    h.create(strategy=EXPERIMENT)
    await h.run_until(lambda s: s.get("phase") == "Succeeded", "v1 stable")
    h.prometheus.healthy(("v1", "v2"), SLICES)
    for name in SLICES:
        h.prometheus.conversions[(name, "v1")] = 100.0
        h.prometheus.conversions[(name, "v2")] = 130.0
    h.set_version("v2")
    await h.run_until(lambda s: s.get("phase") == "Experiment", "experiment started")
    names = [str(r["name"]) for r in h.virtual_service()["spec"]["http"]]
    assert [n for n in names if n.endswith(".candidate-arm")] == [
        f"modelrollout-{n}.candidate-arm" for n in SLICES
    ]
    assert h.weights() == dict.fromkeys(SLICES, 0)
    await h.run_until(lambda s: s.get("stableVersion") == "v2", "v2 promoted")
    assert any("increase(model_conversions_total{" in q for q in h.prometheus.queries)
    reasons = [d["reason"] for d in h.status["history"]]
    assert "ExperimentBetter" in reasons
    result = h.status["experiment"]
    assert result["overall"]["direction"] == "better"
    assert round(result["overall"]["effect"], 2) == 0.3
    assert result["plannedTrialsPerArm"] == 14749
    assert [n for n in (str(r["name"]) for r in h.virtual_service()["spec"]["http"]) if "arm" in n] == []
