"""Decisions are durable: the status write commits them, and the routes and workloads follow from it.

The two defects issue 9 found by driving the planner: a rollback whose status write failed after its route
write was undone by the next tick (the starved candidate read Inconclusive, which reset its failure count,
and its canary weight was written back), and a failed workload write discarded the tick's analysis, so a
guard with failureLimit >= 2 never fired while the routes had already moved on.
"""

from __future__ import annotations

import contextlib
from typing import Any

from modelrollout.kube import KubeError
from tests.support.controller import NAMESPACE, Harness
from tests.support.world import spec_dict

SLICES = ["ios", "android", "default"]


def ratio_guard_only() -> dict[str, Any]:
    analysis = dict(spec_dict()["analysis"])
    analysis["guards"] = [
        {"name": "error-ratio", "metric": "errorRate", "maxRatioToStable": 1.5, "failureLimit": 2}
    ]
    return analysis


async def canary_v2(h: Harness) -> None:
    h.create(analysis=ratio_guard_only())
    await h.run_until(lambda s: s.get("phase") == "Succeeded", "v1 stable")
    h.prometheus.healthy(("v1", "v2"), SLICES)
    h.set_version("v2")
    await h.run_until(lambda s: s.get("phase") == "Canary", "canary")
    assert h.weights() == dict.fromkeys(SLICES, 10)


async def tick_through_errors(h: Harness) -> None:
    with contextlib.suppress(KubeError):  # the daemon logs it and runs the next tick
        await h.tick()


async def test_a_rollback_whose_status_write_fails_is_never_undone() -> None:
    h = Harness()
    await canary_v2(h)
    h.prometheus.counts[("android", "v2")] = (1000.0, 200.0)
    await h.tick()  # android's first failure
    h.kube.fail("patch", "modelrollout/status", status=500, message="etcdserver: request timed out")
    await tick_through_errors(h)  # its second: the rollback, whose status write fails
    h.prometheus.counts = {key: value for key, value in h.prometheus.counts.items() if key[1] != "v2"}
    seen = [h.weights()["android"]]
    for _ in range(4):  # the candidate is starved: no series, every slice Inconclusive
        await tick_through_errors(h)
        seen.append(h.weights()["android"])
    dropped = seen.index(0) if 0 in seen else None
    assert dropped is None or not any(seen[dropped:]), f"the rolled-back candidate got traffic again: {seen}"
    h.prometheus.counts[("android", "v2")] = (1000.0, 200.0)
    await h.run_until(lambda s: s.get("phase") == "RolledBack", "rolled back", limit=5)
    assert h.weights() == dict.fromkeys(SLICES, 0)


async def test_a_failed_workload_write_keeps_the_analysis() -> None:
    h = Harness()
    await canary_v2(h)

    def someone_scales_v2(kube: Any) -> None:  # every tick the operator finds v2 at 3 and scales it back
        deployment = kube.deployments.get((NAMESPACE, "recommender-v2"))
        if deployment is not None:
            deployment["spec"]["replicas"] = 3

    h.kube.on("list", "deployment", someone_scales_v2)
    h.kube.fail("patch", "deployment/scale", status=500, message="injected", times=None)
    h.kube.fail("apply", "deployment", status=500, message="injected", times=None)
    h.prometheus.counts[("android", "v2")] = (1000.0, 200.0)
    for _ in range(4):
        await tick_through_errors(h)
        if h.status.get("phase") == "RolledBack":
            break
    assert h.status.get("phase") == "RolledBack", (
        f"two failing evaluations never counted to failureLimit 2: {h.status.get('message')}"
    )
    assert h.weights() == dict.fromkeys(SLICES, 0), (
        "the routes roll back although the workloads cannot be written"
    )


async def test_the_next_process_completes_a_decision_killed_between_its_status_and_route_writes() -> None:
    h = Harness()
    await canary_v2(h)
    h.prometheus.counts[("android", "v2")] = (1000.0, 200.0)
    await h.tick()

    class Killed(BaseException):
        pass

    def die(_: Any) -> None:
        raise Killed

    h.kube.on("patch", "modelrollout/status", die, after=True)
    with contextlib.suppress(Killed):
        await h.tick()
    assert h.status["phase"] == "RolledBack"
    assert h.weights() == dict.fromkeys(SLICES, 10), "killed before the route write"
    h.kube.after.clear()
    h.restart()
    await h.tick()
    assert h.weights() == dict.fromkeys(SLICES, 0)
    assert [d["reason"] for d in h.status["history"]].count("GuardFailed") == 1
