"""API writes while a rollout holds a steady canary step (every slice passing, nothing to decide)."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

from rich.console import Console

from bench.common import metric_total, scenario_variant
from modelrollout.kube import Kube
from modelrollout.sandbox.cluster import Sandbox
from modelrollout.sandbox.demo import DemoRunner

WINDOW = 40.0


def _edit(document: dict[str, Any]) -> None:
    spec = document["rollout"]["spec"]
    spec["analysis"]["interval"] = "1s"
    spec["strategy"] = {"canary": {"steps": [{"weight": 25, "pause": "3m"}]}}
    document["events"] = [{"after": "75s", "action": "abort"}]  # ends the run after the measurement
    document["expect"] = {"phase": "RolledBack"}


async def run(sandbox: Sandbox, console: Console) -> dict[str, Any]:
    assert sandbox.state is not None
    namespace = f"bench-writes-{secrets.token_hex(2)}"
    # The operator's default evidence refresh (60s), as in production; the demo uses 1s for its live view.
    runner = DemoRunner(
        scenario_variant("healthy", "writes", _edit),
        sandbox=sandbox,
        namespace=namespace,
        console=Console(quiet=True),
        live=False,
        status_refresh="60s",
    )
    task = asyncio.create_task(runner.run())
    kube = await Kube.connect(sandbox.state.kubeconfig)
    try:
        while True:
            body = await kube.get_rollout(namespace, "recommender") or {}
            status = body.get("status") or {}
            slices = status.get("slices") or []
            steady = (
                status.get("phase") == "Canary" and slices and all(s.get("verdict") == "Pass" for s in slices)
            )
            if steady:
                break
            if task.done():
                raise RuntimeError("the rollout ended before reaching a steady canary step")
            await asyncio.sleep(0.5)
        await asyncio.sleep(3)  # let the first passing evidence be written
        assert runner.operator is not None
        address = runner.operator.metrics_address
        ticks_before = metric_total(address, "modelrollout_reconcile_duration_seconds_count")
        before = metric_total(address, "modelrollout_api_writes_total")
        await asyncio.sleep(WINDOW)
        after = metric_total(address, "modelrollout_api_writes_total")
        ticks = metric_total(address, "modelrollout_reconcile_duration_seconds_count") - ticks_before
        by_kind = {
            kind: metric_total(address, "modelrollout_api_writes_total", {"kind": kind})
            for kind in ("virtualservice", "deployment", "service", "status", "event")
        }
    finally:
        await kube.close()
    await task
    writes = after - before
    console.print(
        f"  steady canary step: {writes:g} API writes in {WINDOW:.0f}s ({ticks:g} ticks at a 1s interval)"
    )
    console.print(f"  writes by kind over the whole run: {by_kind}")
    return {"window_seconds": WINDOW, "ticks": ticks, "writes": writes, "writes_by_kind_whole_run": by_kind}
