"""Blue-green end to end in the sandbox: the full second fleet, the one-write switch, the judged bake, the
one-write switch back, the preview and QA routes, and Argo CD's health of the result (Argo CD's own code)."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path

import pytest

from modelrollout.analysis.prometheus import PrometheusClient
from modelrollout.api.status import ModelRolloutStatus
from modelrollout.sandbox.demo import DemoResult
from tests.conftest import Cluster
from tests.e2e.test_scenarios import final_health, reasons, run

pytestmark = pytest.mark.e2e
USERS = ["ios", "android", "default"]


def decided(result: DemoResult, reason: str) -> float:
    """Wall-clock time of the first decision with this reason."""
    when = next(d["time"] for d in result.status["history"] if d["reason"] == reason)
    return datetime.fromisoformat(when).timestamp()


def served_window(result: DemoResult, version: str = "v2") -> tuple[float, float]:
    window = result.traffic.window(version=version, slices=USERS)
    assert window is not None, f"{version} served no user request"
    return window


async def excluded_requests(prometheus: str, namespace: str) -> dict[str, float]:
    """Requests the candidate answered per slice label outside the declared slices, from Prometheus."""
    # The fleet is gone by now: its last values, before Prometheus marked the series stale.
    selector = f'namespace="{namespace}",version="v2",slice=~"_.*"'
    query = f"sum by (slice) (max_over_time(model_requests_total{{{selector}}}[10m]))"
    async with PrometheusClient(prometheus, timeout=5) as client:
        return {s.labels["slice"]: s.value for s in await client.query(query)}


def test_blue_green_previews_switches_every_slice_in_one_write_bakes_and_promotes(
    cluster: Cluster, tmp_path: Path
) -> None:
    result = run(cluster, "bluegreen-healthy", tmp_path)
    assert reasons(result)[-3:] == ["PreviewStarted", "Switched", "BakePassed"]
    switched = decided(result, "Switched")
    first, _ = served_window(result)
    assert first > switched, "a user reached v2 before the switch"
    weights = {s.weight for s in result.timeline if s.phase in ("Preview", "Baking")}
    assert weights == {0, 100}, f"a partial share was written: {weights}"
    # Testers reached v2 before the switch through both header routes, and v2 labelled them out of analysis.
    for probe in ("qa", "preview"):
        window = result.traffic.window(version="v2", slices=[probe])
        assert window is not None, f"no {probe} request reached v2"
        assert window[0] < switched, f"{probe} requests did not reach v2 before the switch"
    assert cluster.prometheus is not None
    excluded = asyncio.run(excluded_requests(cluster.prometheus, result.namespace))
    assert excluded.get("_qa", 0) > 0
    assert excluded.get("_preview", 0) > 0
    final = ModelRolloutStatus.model_validate(result.status)
    assert (final.stable_version, final.previous_version) == ("v2", "v1")
    assert final_health(result) == "Healthy"


def test_blue_green_regression_in_the_bake_switches_back_and_users_met_v2_only_in_the_bake(
    cluster: Cluster, tmp_path: Path
) -> None:
    result = run(cluster, "bluegreen-regression", tmp_path)
    switched, back = decided(result, "Switched"), decided(result, "GuardFailed")
    first, last = served_window(result)
    assert switched < first, "a user reached v2 before the switch"
    # The one write took v2 out of every route: no request left for v2 once the routes read back without it
    # (requests already in flight when the generator re-read the routes may still land).
    unrouted = result.traffic.unrouted_at("v2", switched)
    assert unrouted is not None, "the routes still named v2 after the switch back"
    assert unrouted >= back, "v2 left the routes before the switch back was decided"
    assert last <= unrouted, f"users were sent to v2 {last - unrouted:.2f}s after the routes dropped it"
    final = ModelRolloutStatus.model_validate(result.status)
    assert {s.name for s in final.slices if s.verdict == "Fail"} == {"android"}
    baking = [s.weight for s in result.timeline if s.phase == "Baking"]
    assert baking, "the bake was never observed"
    assert set(baking) == {100}
    assert final_health(result) == "Degraded"


def test_blue_green_cold_start_never_switches_before_every_replica_is_model_ready(
    cluster: Cluster, tmp_path: Path
) -> None:
    result = run(cluster, "bluegreen-cold-start", tmp_path)
    replicas = 4
    not_ready = [s.wall for s in result.timeline if s.candidate_ready < replicas and s.phase != "Succeeded"]
    first, _ = served_window(result)
    assert not_ready, "the load was never observed in progress"
    assert first > max(not_ready), "a user reached v2 while one of its replicas was still loading"
    preview = [s for s in result.timeline if s.phase == "Preview"]
    assert any(s.candidate_ready < replicas for s in preview), (
        "the preview was never seen waiting on the load"
    )
    for sample in result.timeline:
        if sample.weight > 0:
            assert sample.candidate_ready == replicas, (
                f"{sample.weight}% at {sample.t:.1f}s with {sample.candidate_ready}/{replicas} model-ready"
            )
    assert final_health(result) == "Healthy"
