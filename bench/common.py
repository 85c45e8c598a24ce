"""What every benchmark shares: a sandbox, scenario variants, reading the operator's metrics."""

from __future__ import annotations

import copy
import statistics
from pathlib import Path
from typing import Any

import httpx
import yaml
from prometheus_client.parser import text_string_to_metric_families

from modelrollout.sandbox.scenario import Scenario, parse_scenario

REPO = Path(__file__).resolve().parents[1]
SCENARIOS = REPO / "examples" / "scenarios"


def scenario_variant(base: str, name: str, edit: Any) -> Scenario:
    """A shipped scenario with `edit(document)` applied, validated like any scenario file."""
    document = yaml.safe_load((SCENARIOS / f"{base}.yaml").read_text())
    document = copy.deepcopy(document)
    document["name"] = name
    edit(document)
    return parse_scenario(document, f"{base}.yaml ({name})")


def metric_total(metrics_address: str, name: str, labels: dict[str, str] | None = None) -> float:
    """Sum of a metric's samples on the operator's /metrics whose labels include `labels`."""
    text = httpx.get(f"http://{metrics_address}/metrics", timeout=5).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in (labels or {}).items())
    )


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def summary(values: list[float]) -> str:
    return (
        f"n={len(values)} median={statistics.median(values):.3f}s p95={percentile(values, 0.95):.3f}s "
        f"min={min(values):.3f}s max={max(values):.3f}s"
    )
