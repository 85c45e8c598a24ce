"""The HTML report draws per-slice weights and guard values over time and marks faults on every chart."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from modelrollout.sandbox.report import WIDTH, render
from modelrollout.sandbox.scenario import load_scenario
from tests.unit.sandbox.test_scenario import HEALTHY


@dataclass
class _S:
    t: float
    phase: str | None
    weight: int
    mirror: float
    status: dict[str, Any] = field(default_factory=dict)


def _status(weight: int, p99: float) -> dict[str, Any]:
    guard = {"name": "p99", "verdict": "Pass", "canary": p99, "threshold": 0.05}
    slices = [{"name": n, "canaryWeight": weight, "guards": [guard]} for n in ("ios", "default")]
    return {
        "phase": "Canary",
        "slices": slices,
        "history": [{"time": "t", "phase": "Canary", "reason": "StepPassed", "message": "m"}],
    }


def test_report_charts_weights_and_guards_and_marks_faults() -> None:
    scenario = load_scenario(HEALTHY)
    samples = [_S(float(t), "Canary", 25, 0.0, _status(25, 0.03 + t / 1000)) for t in range(20)]
    page = render(
        scenario, "ns", samples, [(7.0, "stop-prometheus for 20s at phase Canary step 1 weight 25%")]
    )
    assert page.count("<svg") == 2  # weights, and the p99 guard
    assert page.count(">stop-prometheus for 20s</text>") == 2  # the fault is marked on both charts
    assert "ios weight %" in page
    for x in re.findall(r'<text x="([0-9.]+)"', page):
        assert float(x) < WIDTH - 40, "a label starts too close to the right edge to be read"
