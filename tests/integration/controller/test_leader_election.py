"""Two replicas with leader election: only the Lease holder reconciles; SIGKILL it mid-canary and the standby
continues from the same position within the lease duration plus one interval.

v2 is held in Canary step 1 (no data in Prometheus for this namespace, so every slice is Inconclusive).
"""

from __future__ import annotations

import asyncio
import socket
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from kubernetes.aio import client

from modelrollout.sandbox.operator_process import OperatorProcess

from .helpers import (
    MODEL,
    create_rollout,
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
NAME = "elected"
LEASE = "modelrollout-operator"
LEASE_SECONDS = 4.0
INTERVAL = 1.0  # rollout_spec's analysis interval


def _timestamp(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def _holder(api: client.ApiClient, namespace: str) -> str | None:
    lease = await client.CoordinationV1Api(api).read_namespaced_lease(LEASE, namespace)
    return lease.spec.holder_identity if lease.spec is not None else None


async def _ticks(operator: OperatorProcess) -> float:
    samples = await scrape(f"http://{operator.metrics_address}/metrics")
    return sample_value(samples, "modelrollout_reconcile_duration_seconds_count") or 0.0


async def test_the_standby_takes_over_a_killed_leader_mid_canary(
    cluster: Cluster, kube: NamespacedApi, prometheus_url: str, tmp_path: Path
) -> None:
    ns, api = kube.namespace, kube.api
    flags = ("--leader-elect", f"--lease-namespace={ns}", f"--lease-duration={LEASE_SECONDS:g}s")
    replicas = [
        OperatorProcess(cluster.kubeconfig, ns, tmp_path / name, status_refresh="2s", extra_args=flags)
        for name in ("a", "b")
    ]
    try:
        for replica in replicas:
            await asyncio.to_thread(replica.start)
        await create_rollout(api, ns, NAME, rollout_spec("v1", prometheus_url))
        await eventually(api, ns, NAME, phase_is("Succeeded"), "v1 Succeeded")
        await patch_rollout(
            api, ns, NAME, {"spec": {"model": {"version": "v2", "uri": f"s3://models/{MODEL}/v2"}}}
        )
        await eventually(api, ns, NAME, phase_is("Shadow"), "v2 in Shadow")
        await patch_rollout(api, ns, NAME, {"metadata": {"annotations": {"modelrollout.io/promote": "one"}}})
        await eventually(
            api, ns, NAME, lambda s: (s.get("phase"), s.get("step")) == ("Canary", 1), "Canary step 1"
        )
        holder = await _holder(api, ns)
        leader = next(r for r in replicas if r.process is not None and holder == f"{_host()}-{r.process.pid}")
        standby = next(r for r in replicas if r is not leader)
        assert await _ticks(standby) == 0, "the standby reconciled while the other replica held the Lease"
        assert await _ticks(leader) > 0
        before = status_of(await read_rollout(api, ns, NAME))
        routes = await read_virtual_service(api, ns, MODEL)
        assert routes is not None

        await asyncio.to_thread(leader.kill)
        killed, killed_at = time.monotonic(), datetime.now(UTC)
        await eventually(
            api,
            ns,
            NAME,
            lambda s: _timestamp(s.get("lastAnalysis") or "1970-01-01T00:00:00Z") > killed_at,
            "an analysis by the standby",
            limit=60,
        )
        takeover = time.monotonic() - killed
        print(
            f"takeover after the leader's SIGKILL: {takeover:.2f}s (lease {LEASE_SECONDS:g}s + interval 1s)"
        )
        assert standby.process is not None
        assert await _holder(api, ns) == f"{_host()}-{standby.process.pid}"
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
        now = await read_virtual_service(api, ns, MODEL)
        assert now is not None
        assert now["metadata"]["resourceVersion"] == routes["metadata"]["resourceVersion"], "routes rewritten"
    finally:
        for replica in replicas:
            replica.stop()
        await release_rollouts(api, ns)


def _host() -> str:
    return socket.gethostname()
