"""Leader election on a real Lease: exactly one holder, and a standby takes over when the leader dies."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

import pytest

from modelrollout.kube import connect
from modelrollout.kube.lease import LeaseElector

if TYPE_CHECKING:
    from tests.conftest import Cluster, NamespacedApi

pytestmark = pytest.mark.integration
DURATION = 3.0


async def _until(check: object, within: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < within:
        if check():  # type: ignore[operator]
            return time.monotonic() - started
        await asyncio.sleep(0.05)
    raise AssertionError(f"not within {within}s")


async def test_one_leader_and_a_takeover_within_the_lease_duration(
    cluster: Cluster, kube: NamespacedApi
) -> None:
    clients = [await connect(str(cluster.kubeconfig)) for _ in range(2)]
    electors = [
        LeaseElector(
            c.api, kube.namespace, "modelrollout-operator", f"replica-{i}", duration=DURATION, renew=1.0
        )
        for i, c in enumerate(clients)
    ]
    try:
        for elector in electors:
            elector.start()
        await _until(lambda: any(e.leading for e in electors), within=30)
        for _ in range(20):  # never two leaders while both run
            assert sum(e.leading for e in electors) == 1
            await asyncio.sleep(0.1)
        leader = next(e for e in electors if e.leading)
        standby = next(e for e in electors if e is not leader)
        assert leader._task is not None
        leader._task.cancel()  # the leader dies without handing over (as on SIGKILL)
        killed = time.monotonic()
        leader._held_until = 0.0
        took = await _until(lambda: standby.leading, within=30)
        assert took <= DURATION + 2 * standby.renew + 2.0, took  # expiry, one standby poll, a loaded machine
        assert time.monotonic() - killed >= DURATION - 1.0  # not before the dead leader's Lease expired
    finally:
        for elector in electors:
            await elector.stop()
        for c in clients:
            await c.close()
