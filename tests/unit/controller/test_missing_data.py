"""Missing data is named and has an end: MetricsAvailable says why, and a stage's deadline acts.

On main an empty answer and Prometheus' partial-data `warnings` read as MetricsAvailable=True, and
`onInconclusive: hold` held a starved canary for ever.
"""

from __future__ import annotations

from typing import Any

from tests.support.controller import Harness
from tests.support.world import spec_dict

SLICES = ["ios", "android", "default"]


def analysis(**extra: Any) -> dict[str, Any]:
    spec = dict(spec_dict()["analysis"])
    spec["guards"] = [{"name": "error-ratio", "metric": "errorRate", "maxRatioToStable": 1.5}]
    spec.update(extra)
    return spec


async def canary_v2(h: Harness, **extra: Any) -> None:
    h.create(analysis=analysis(**extra))
    await h.run_until(lambda s: s.get("phase") == "Succeeded", "v1 stable")
    h.prometheus.healthy(("v1", "v2"), SLICES)
    h.set_version("v2")
    await h.run_until(lambda s: s.get("phase") == "Canary", "canary")


async def test_partial_data_warnings_make_metrics_unavailable_and_nothing_is_promoted() -> None:
    h = Harness()
    await canary_v2(h)
    h.prometheus.warnings = ["store 10.0.0.7:10901 did not answer: partial response"]
    for _ in range(30):
        await h.tick()
    metrics = h.condition("MetricsAvailable")
    assert (metrics["status"], metrics["reason"]) == ("False", "PartialData")
    assert "did not answer" in metrics["message"]
    assert (h.status["phase"], h.status["step"]) == ("Canary", 1), "advanced on partial data"


async def test_an_empty_answer_makes_metrics_unavailable_naming_the_guard() -> None:
    h = Harness()
    await canary_v2(h)
    h.prometheus.counts = {}
    await h.tick()
    metrics = h.condition("MetricsAvailable")
    assert (metrics["status"], metrics["reason"]) == ("False", "NoData")
    assert "error-ratio" in metrics["message"]


async def test_the_missing_data_deadline_rolls_back_a_starved_canary() -> None:
    h = Harness()
    await canary_v2(h, missingDataDeadline="2m")
    h.prometheus.counts = {}
    for _ in range(23):  # 5 s ticks: 115 s without data
        await h.tick()
    assert h.status["phase"] == "Canary"
    await h.run_until(lambda s: s.get("phase") == "RolledBack", "deadline", limit=3)
    assert h.status["history"][-1]["reason"] == "MissingData"
    assert h.weights() == dict.fromkeys(SLICES, 0)


async def test_pause_at_the_deadline_holds_traffic_and_warns_once() -> None:
    h = Harness()
    await canary_v2(h, missingDataDeadline="1m", onMissingData="pause")
    before = h.weights()
    h.prometheus.status = 503
    for _ in range(40):
        await h.tick()
    assert h.status["phase"] == "Canary"
    assert h.weights() == before
    assert h.kube.event_reasons().count("MissingData") == 1
    assert h.status["missingDataOverdue"] is True
    h.prometheus.status = 200
    await h.run_until(lambda s: s.get("phase") == "Succeeded", "data back: the rollout goes on")


async def test_a_default_deadline_exists_and_is_safe() -> None:
    h = Harness()
    await canary_v2(h)
    h.prometheus.counts = {}
    await h.run_until(lambda s: s.get("phase") == "RolledBack", "default deadline", limit=15 * 12 + 5)
    assert h.status["history"][-1]["reason"] == "MissingData"
