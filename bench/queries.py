"""Prometheus queries per tick against the real Prometheus, with 2 and with 16 slices (same guards)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from rich.console import Console

from modelrollout.analysis.prometheus import PrometheusClient
from modelrollout.analysis.run import analyze
from modelrollout.api.spec import ModelRolloutSpec
from modelrollout.sandbox.cluster import Sandbox

GUARDS = [
    {"name": "error-rate", "metric": "errorRate", "max": 0.05, "immediate": True},
    {"name": "error-ratio", "metric": "errorRate", "maxRatioToStable": 1.5, "test": "sequential"},
    {"name": "p99", "metric": "latencyP99", "maxRatioToStable": 1.5},
    {"name": "p50", "metric": "latencyP50", "maxRatioToStable": 1.5},
    {"name": "prediction-shift", "metric": "predictionPSI", "max": 0.2},
]


def _spec(slices: int, prometheus: str) -> ModelRolloutSpec:
    return ModelRolloutSpec.model_validate(
        {
            "model": {"name": "recommender", "version": "v2", "uri": "s3://m/v2"},
            "template": {"spec": {"containers": [{"name": "server", "image": "example.invalid/s:1"}]}},
            "replicas": 2,
            "traffic": {"istio": {"host": "recommender", "virtualService": "recommender"}},
            "slices": [
                {"name": f"segment-{i}", "match": {"headers": {"x-segment": {"exact": str(i)}}}}
                for i in range(slices)
            ],
            "strategy": {"canary": {"steps": [{"weight": 10}]}},
            "analysis": {"interval": "1s", "prometheus": {"url": prometheus}, "guards": GUARDS},
        }
    )


async def run(sandbox: Sandbox, console: Console, ticks: int = 20) -> dict[str, Any]:
    assert sandbox.state is not None
    out: dict[str, Any] = {"guards": len(GUARDS)}
    for slices in (2, 16):
        spec = _spec(slices, sandbox.state.prometheus)
        client = PrometheusClient(sandbox.state.prometheus, timeout=5)
        durations = []
        try:
            for _ in range(ticks):
                started = time.perf_counter()
                await analyze(
                    client, spec, "bench", "canary", "v1", "v2", datetime.now(UTC), datetime.now(UTC)
                )
                durations.append(time.perf_counter() - started)
        finally:
            await client.aclose()
        per_tick = client.queries_issued / ticks
        durations.sort()
        out[f"slices_{slices}"] = {
            "queries_per_tick": per_tick,
            "median_tick_seconds": durations[len(durations) // 2],
        }
        console.print(
            f"  {slices:>2} slices, {len(GUARDS)} guards: {per_tick:g} queries per tick "
            f"(median analysis {1000 * durations[len(durations) // 2]:.1f} ms)"
        )
    return out
