"""Detection latency: from the first Prometheus evaluation that shows a breach to the VirtualService write.

Each run rolls a candidate that fails half of android's requests out to a 50% canary, analysed every second.
A poller records when the routes lose the candidate (the rollback write). Afterwards the guard's own query is
replayed against Prometheus at 50 ms steps through the canary (`time=` instant queries) and judged by the
operator's own judge: the first instant whose verdict is Fail is when the data first showed the breach.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from rich.console import Console

from bench.common import scenario_variant, summary
from modelrollout.analysis.prometheus import PrometheusClient
from modelrollout.analysis.run import analyze
from modelrollout.api.spec import ModelRolloutSpec
from modelrollout.kube import Kube
from modelrollout.sandbox.cluster import Sandbox
from modelrollout.sandbox.demo import DemoRunner
from modelrollout.traffic.istio import observed_weights

STEP = 0.05


def _edit(document: dict[str, Any]) -> None:
    spec = document["rollout"]["spec"]
    spec["analysis"].update(interval="1s", window="5s", minSamples=20)
    spec["analysis"]["guards"] = [
        {"name": "error-rate", "metric": "errorRate", "max": 0.05, "immediate": True}
    ]
    spec["strategy"] = {"canary": {"steps": [{"weight": 50, "pause": "5m"}]}}
    document["fleet"]["versions"]["v2"]["slices"] = {"android": {"errorRate": 0.5}}
    document["timeout"] = "2m"


async def _watch_rollback(kube: Kube, namespace: str, stop: asyncio.Event) -> float | None:
    """Wall time at which the live routes first send nothing to the candidate after having sent some."""
    routed = False
    while not stop.is_set():
        live = await kube.get_virtual_service(namespace, "recommender")
        http = ((live or {}).get("spec") or {}).get("http") or []
        weights = observed_weights(http)
        if any(weights.values()):
            routed = True
        elif routed:
            return time.time()
        await asyncio.sleep(0.02)
    return None


async def one_run(sandbox: Sandbox, index: int, console: Console) -> float:
    assert sandbox.state is not None
    scenario = scenario_variant("error-regression", "latency", _edit)
    namespace = f"bench-latency-{index}-{secrets.token_hex(2)}"
    kube = await Kube.connect(sandbox.state.kubeconfig)
    stop = asyncio.Event()
    watcher = asyncio.create_task(_watch_rollback(kube, namespace, stop))
    runner = DemoRunner(scenario, sandbox=sandbox, namespace=namespace, console=console, live=False)
    try:
        result = await runner.run()
    finally:
        stop.set()
    written = await watcher
    await kube.close()
    if written is None or result.status.get("phase") != "RolledBack":
        raise RuntimeError(f"run {index}: no rollback observed ({result.status.get('message')})")
    canary_start = next(
        datetime.fromisoformat(d["time"]) for d in result.status["history"] if d["reason"] == "CanaryStarted"
    )
    spec = ModelRolloutSpec.model_validate(
        scenario.updated_manifest(namespace, sandbox.state.prometheus)["spec"]
    )
    client = PrometheusClient(sandbox.state.prometheus, timeout=5)
    try:
        at = canary_start
        end = datetime.fromtimestamp(written, UTC)
        first_fail = None
        while at <= end:
            judged = await analyze(client, spec, namespace, "canary", "v1", "v2", canary_start, at)
            if judged.slices["android"].verdict == "Fail":
                first_fail = at
                break
            at += timedelta(seconds=STEP)
    finally:
        await client.aclose()
    if first_fail is None:
        raise RuntimeError(f"run {index}: replay never showed the breach before the write")
    return written - first_fail.timestamp()


async def run(sandbox: Sandbox, runs: int, console: Console) -> dict[str, Any]:
    latencies = []
    for index in range(runs):
        latency = await one_run(sandbox, index, Console(quiet=True))
        latencies.append(latency)
        console.print(f"  run {index + 1:>2}/{runs}: breach visible -> rollback written in {latency:.3f}s")
    console.print(f"  detection latency at a 1s interval: {summary(latencies)}")
    return {"interval_seconds": 1.0, "latencies": latencies}
