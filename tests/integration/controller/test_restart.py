"""A SIGKILLed operator's replacement resumes exactly where the status says, and changes nothing.

v2 is held in Canary step 1 (Prometheus has no data for this namespace, so every slice is Inconclusive and
the rollout holds). The operator is killed with SIGKILL (no clean-up) and a new one started: after several
ticks of the new operator the phase, step, weight, history and the VirtualService are exactly as before.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from modelrollout.sandbox.operator_process import OperatorProcess

from .helpers import (
    MODEL,
    create_rollout,
    deployment_versions,
    eventually,
    patch_rollout,
    phase_is,
    read_rollout,
    read_virtual_service,
    release_rollouts,
    rollout_spec,
    sample_value,
    scrape,
    status_of,
)

if TYPE_CHECKING:
    from tests.conftest import Cluster, NamespacedApi

pytestmark = pytest.mark.integration
NAME = "resumed"


def _timestamp(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def test_a_killed_operator_is_replaced_without_any_change(
    cluster: Cluster, kube: NamespacedApi, prometheus_url: str, tmp_path: Path
) -> None:
    ns, api = kube.namespace, kube.api
    first = OperatorProcess(cluster.kubeconfig, ns, tmp_path / "first", status_refresh="2s")
    second = OperatorProcess(cluster.kubeconfig, ns, tmp_path / "second", status_refresh="2s")
    try:
        await asyncio.to_thread(first.start)
        await create_rollout(api, ns, NAME, rollout_spec("v1", prometheus_url))
        await eventually(api, ns, NAME, phase_is("Succeeded"), "v1 Succeeded")
        await patch_rollout(
            api, ns, NAME, {"spec": {"model": {"version": "v2", "uri": f"s3://models/{MODEL}/v2"}}}
        )
        await eventually(api, ns, NAME, phase_is("Shadow"), "v2 in Shadow")
        await patch_rollout(api, ns, NAME, {"metadata": {"annotations": {"modelrollout.io/promote": "one"}}})
        await eventually(
            api,
            ns,
            NAME,
            lambda s: (
                (s.get("phase"), s.get("step"), s.get("canaryWeight")) == ("Canary", 1, 20)
                and all(item.get("verdict") == "Inconclusive" for item in s.get("slices") or [{}])
            ),
            "Canary step 1 judged Inconclusive",
        )
        before = status_of(await read_rollout(api, ns, NAME))
        routes = await read_virtual_service(api, ns, MODEL)
        assert routes is not None
        weights = [[d["weight"] for d in r["route"]] for r in routes["spec"]["http"]]
        assert weights == [[80, 20], [80, 20]], routes["spec"]["http"]

        await asyncio.to_thread(first.kill)
        assert not first.running
        killed = datetime.now(UTC)
        await asyncio.to_thread(second.start)

        # The new operator ticks: it judges again (lastAnalysis moves) and exports the same position.
        await eventually(
            api,
            ns,
            NAME,
            lambda s: _timestamp(s.get("lastAnalysis") or "1970-01-01T00:00:00Z") > killed,
            "an analysis by the new operator",
            limit=30,
        )
        await asyncio.sleep(3)  # three more ticks (interval 1s)
        samples = await scrape(f"http://{second.metrics_address}/metrics")
        assert sample_value(samples, "modelrollout_phase", namespace=ns, rollout=NAME, phase="Canary") == 1
        assert sample_value(samples, "modelrollout_step", namespace=ns, rollout=NAME) == 1
        assert (
            sample_value(
                samples, "modelrollout_canary_weight_percent", namespace=ns, rollout=NAME, slice="ios"
            )
            == 20
        )
        assert sample_value(samples, "modelrollout_decisions_total", namespace=ns, rollout=NAME) is None, (
            "the new operator took a decision"
        )

        after = status_of(await read_rollout(api, ns, NAME))
        for key in (
            "phase",
            "step",
            "canaryWeight",
            "stableVersion",
            "candidateVersion",
            "stepSince",
            "history",
        ):
            assert after.get(key) == before.get(key), (key, before.get(key), after.get(key))
        assert [s["canaryWeight"] for s in after["slices"]] == [20, 20]
        assert _timestamp(after["lastAnalysis"]) > _timestamp(before["lastAnalysis"])
        now = await read_virtual_service(api, ns, MODEL)
        assert now is not None
        assert now["metadata"]["resourceVersion"] == routes["metadata"]["resourceVersion"], "routes rewritten"
        assert now["spec"] == routes["spec"]
        assert await deployment_versions(api, ns, NAME) == {"v1", "v2"}
        assert second.running, second.log.read_text()[-4000:]
    finally:
        await asyncio.to_thread(first.kill)
        await asyncio.to_thread(second.stop)
        await release_rollouts(api, ns)
