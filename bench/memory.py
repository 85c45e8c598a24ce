"""Operator memory and tick cost with 100 concurrent rollouts held in shadow (Prometheus has no data)."""

from __future__ import annotations

import asyncio
import statistics
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console

from bench.common import metric_total
from modelrollout.api.crd import render as render_crd
from modelrollout.kube import Kube
from modelrollout.sandbox.cluster import Sandbox
from modelrollout.sandbox.operator_process import OperatorProcess

NAMESPACE = "bench-memory"


def _rollout(index: int, version: str, prometheus: str) -> dict[str, Any]:
    return {
        "apiVersion": "modelrollout.io/v1alpha1",
        "kind": "ModelRollout",
        "metadata": {"name": f"model-{index:03d}", "namespace": NAMESPACE},
        "spec": {
            "model": {"name": f"model-{index:03d}", "version": version, "uri": f"s3://m/{version}"},
            "template": {"spec": {"containers": [{"name": "server", "image": "example.invalid/s:1"}]}},
            "replicas": 1,
            "traffic": {"istio": {"host": f"model-{index:03d}", "virtualService": f"model-{index:03d}"}},
            "slices": [{"name": "ios", "match": {"headers": {"x-platform": {"exact": "ios"}}}}],
            "strategy": {"shadow": {"duration": "10m"}, "canary": {"steps": [{"weight": 10}]}},
            "analysis": {
                "interval": "5s",
                "prometheus": {"url": prometheus},
                "guards": [
                    {"name": "error-rate", "metric": "errorRate", "max": 0.05},
                    {"name": "p99", "metric": "latencyP99", "maxRatioToStable": 1.5},
                ],
            },
        },
    }


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def run(sandbox: Sandbox, console: Console, count: int = 100) -> dict[str, Any]:
    state = sandbox.state
    assert state is not None
    sandbox.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", stdin=render_crd())
    sandbox.kubectl("create", "namespace", NAMESPACE)
    operator = OperatorProcess(Path(state.kubeconfig), NAMESPACE, sandbox.logs)
    await asyncio.to_thread(operator.start)
    assert operator.process is not None
    idle = _rss_mib(operator.process.pid)
    kube = await Kube.connect(state.kubeconfig)
    try:
        for version in ("v1", "v2"):
            manifests = [_rollout(i, version, state.prometheus) for i in range(count)]
            sandbox.kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(manifests))
            want = "Succeeded" if version == "v1" else "Shadow"
            for _ in range(240):
                phases = [((r.get("status") or {}).get("phase")) for r in await kube.list_rollouts(NAMESPACE)]
                if phases.count(want) == count:
                    break
                await asyncio.sleep(1)
            console.print(f"  {phases.count(want)}/{count} rollouts reached {want}")
        samples = []
        for _ in range(12):  # one minute of steady analysis (every rollout every 5s)
            await asyncio.sleep(5)
            samples.append(_rss_mib(operator.process.pid))
        ticks = metric_total(operator.metrics_address, "modelrollout_reconcile_duration_seconds_count")
        tick_sum = metric_total(operator.metrics_address, "modelrollout_reconcile_duration_seconds_sum")
    finally:
        await kube.close()
        sandbox.kubectl("delete", "namespace", NAMESPACE, "--wait=false", check=False)
        operator.stop()
    result = {
        "rollouts": count,
        "rss_idle_mib": idle,
        "rss_median_mib": statistics.median(samples),
        "rss_max_mib": max(samples),
        "mean_tick_seconds": tick_sum / ticks if ticks else float("nan"),
    }
    console.print(
        f"  operator RSS: idle {idle:.0f} MiB; with {count} rollouts in shadow, analysed every 5s: "
        f"median {result['rss_median_mib']:.0f} MiB, max {result['rss_max_mib']:.0f} MiB; "
        f"mean tick {1000 * result['mean_tick_seconds']:.0f} ms"
    )
    return result
