"""End to end: the real operator runs as a subprocess and the plugin steers a rollout through it.

With no model metrics in Prometheus every analysis is Inconclusive and holds, so the rollout stays wherever
the commands put it: Shadow until `promote`, then Canary step 1, Paused and back, then RolledBack on `abort`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from kubernetes.aio import client

from modelrollout.identity import LOAD_DELAY_ANNOTATION
from tests.support.operator import delete_rollout, drop_finalizers, operator

from .plugin import (
    GROUP,
    PLURAL,
    VERSION,
    create_rollout,
    eventually,
    phase,
    plugin,
    read_rollout,
    rollout_spec,
)

if TYPE_CHECKING:
    from tests.conftest import Cluster, NamespacedApi

pytestmark = pytest.mark.integration
NAME = "recommender"


async def test_promote_pause_resume_and_abort_through_the_running_operator(
    cluster: Cluster, kube: NamespacedApi, prometheus_url: str, tmp_path: Path
) -> None:
    ns, kubeconfig = kube.namespace, cluster.kubeconfig
    log = tmp_path / "operator.log"
    try:
        async with operator(cluster, ns, log) as process:
            # Replicas load for 8 s, so the watch (a new process, slow to start on a loaded machine) surely
            # joins while the initial deploy is still warming.
            spec = rollout_spec("v1", prometheus_url)
            spec["template"]["metadata"]["annotations"][LOAD_DELAY_ANNOTATION] = "8s"
            await create_rollout(kube.api, ns, NAME, spec)

            # The initial deploy needs no analysis: `status --watch` follows it and exits 0 on Succeeded.
            watched = await plugin(kubeconfig, ns, "status", NAME, "--watch", "--timeout", "120s", limit=150)
            assert watched.code == 0, f"{watched}\noperator log:\n{log.read_text()[-4000:]}"
            phases = [line.split()[1] for line in watched.out.splitlines() if line.startswith("Phase ")]
            assert phases[-1] == "Succeeded", watched
            assert len(phases) > 1, "the watch rendered the rollout again as it changed"

            await client.CustomObjectsApi(kube.api).patch_namespaced_custom_object(
                GROUP,
                VERSION,
                ns,
                PLURAL,
                NAME,
                {"spec": {"model": {"version": "v2", "uri": "s3://models/recommender/v2"}}},
                _content_type="application/merge-patch+json",
            )
            await eventually(kube.api, ns, NAME, lambda r: phase(r) == "Shadow", "phase Shadow for v2", 120)

            promoted = await plugin(kubeconfig, ns, "promote", NAME, "--wait", "--timeout", "60s")
            assert promoted.code == 0, promoted
            assert re.fullmatch(
                rf'promote requested: modelrollout "{NAME}" in namespace "{ns}" will advance one step \(from '
                r"shadow to the first canary step\) \(id [^)]+\)",
                promoted.out.splitlines()[0],
            )
            assert promoted.out.splitlines()[1].startswith(
                "acknowledged: phase Canary, step 1/2, weight 20%: "
            )
            status = (await read_rollout(kube.api, ns, NAME))["status"]
            assert (status["phase"], status["step"], status["canaryWeight"]) == ("Canary", 1, 20)
            assert status["history"][-1]["reason"] == "ManualPromotion"

            paused = await plugin(kubeconfig, ns, "pause", NAME, "--wait", "--timeout", "60s")
            assert paused.code == 0, paused
            assert paused.out.splitlines()[-1].startswith(
                "now phase Paused (in Canary), step 1/2, weight 20%"
            )
            assert phase(await read_rollout(kube.api, ns, NAME)) == "Paused"

            resumed = await plugin(kubeconfig, ns, "resume", NAME, "--wait", "--timeout", "60s")
            assert resumed.code == 0, resumed
            assert resumed.out.splitlines()[-1].startswith("now phase Canary, step 1/2, weight 20%")
            status = (await read_rollout(kube.api, ns, NAME))["status"]
            assert (status["phase"], status["history"][-1]["reason"]) == ("Canary", "Resumed")

            aborted = await plugin(kubeconfig, ns, "abort", NAME, "--wait", "--timeout", "60s")
            assert aborted.code == 0, aborted
            assert aborted.out.splitlines()[-1].startswith("acknowledged: phase RolledBack")
            status = (await read_rollout(kube.api, ns, NAME))["status"]
            assert status["phase"] == "RolledBack"
            assert status["canaryWeight"] == 0
            assert status["history"][-1]["reason"] == "Aborted"
            assert status["acknowledged"]["abort"] in aborted.out

            shown = await plugin(kubeconfig, ns, "status", NAME)
            assert shown.code == 0, shown
            lines = shown.out.splitlines()
            assert lines[1].split()[:3] == ["Phase", "RolledBack", "for"]
            assert lines[2].split()[:4] == ["Stable", "v1", "s3://models/recommender/v1", "fingerprint"]
            assert lines[3].split()[:4] == ["Candidate", "v2", "s3://models/recommender/v2", "fingerprint"]
            assert any(line.split()[1:3] == ["RolledBack", "Aborted"] for line in lines)
            assert lines[-1] == "Message: rollout of v2 aborted by a person; rolled back to v1"

            # A finished rollout: --watch returns at once, with 1 for RolledBack.
            final = await plugin(kubeconfig, ns, "status", NAME, "--watch", "--timeout", "30s")
            assert final.code == 1, final

            await delete_rollout(kube.api, ns, NAME)
            assert process.returncode is None, f"the operator exited early:\n{log.read_text()[-4000:]}"
    finally:
        await drop_finalizers(kube.api, ns, NAME)
