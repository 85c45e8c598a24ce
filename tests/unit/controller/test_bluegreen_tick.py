"""Blue-green through the real controller tick: one VirtualService write switches every slice, one switches
back, and the bake reads stable's values from Prometheus at the time of the switch."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tests.support.controller import Harness

SLICES = ["ios", "android", "default"]
BLUE_GREEN = {"blueGreen": {"bake": "20s"}}


async def switched_harness() -> Harness:
    h = Harness()
    h.create(strategy=BLUE_GREEN)
    await h.run_until(lambda s: s.get("phase") == "Succeeded", "v1 stable")
    h.prometheus.healthy(("v1", "v2"), SLICES)
    h.set_version("v2")
    return h


async def test_every_slice_switches_in_one_write_and_the_bake_reads_stable_at_the_switch() -> None:
    h = await switched_harness()
    patches: list[tuple[int, dict[str, int]]] = []

    def watch(status: dict[str, Any]) -> bool:
        count = h.kube.count("patch", "virtualservice")
        if not patches or patches[-1][0] != count:
            patches.append((count, h.weights()))
        return status.get("phase") == "Succeeded"

    await h.run_until(watch, "v2 promoted after the bake")
    weights = [w for _, w in patches]
    switch = weights.index(dict.fromkeys(SLICES, 100))
    assert weights[switch - 1] == dict.fromkeys(SLICES, 0), "the switch moved slices one by one"
    switched_at = next(d["time"] for d in h.status["history"] if d["reason"] == "Switched")
    at = datetime.fromisoformat(switched_at).timestamp()
    assert at in h.prometheus.times, "stable's values were not read at the switch"
    assert h.status["stableVersion"] == "v2"
    assert h.status["previousVersion"] == "v1"


async def test_a_regression_in_the_bake_switches_back_in_one_write() -> None:
    h = await switched_harness()
    await h.run_until(lambda s: s.get("phase") == "Baking", "switched")
    writes = h.kube.count("patch", "virtualservice")
    h.prometheus.counts[("android", "v2")] = (1000.0, 200.0)
    await h.run_until(lambda s: s.get("phase") == "RolledBack", "switched back")
    assert h.kube.count("patch", "virtualservice") - writes == 1
    assert h.weights() == dict.fromkeys(SLICES, 0)
    assert "slice android" in h.status["message"]
