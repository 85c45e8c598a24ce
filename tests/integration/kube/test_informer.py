"""Workload reads come from a watch: after one LIST, ticks see creates, changes and deletes without a LIST."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from modelrollout.kube import connect
from modelrollout.workloads.render import render_deployment
from tests.integration.traffic.helpers import ROLLOUT, create_rollout, make_spec

if TYPE_CHECKING:
    from tests.conftest import Cluster, NamespacedApi

pytestmark = pytest.mark.integration


async def _eventually(read: Callable[[], Any], want: Callable[[Any], bool], within: float = 30) -> Any:
    deadline = time.monotonic() + within
    while True:
        got = await read()
        if want(got) or time.monotonic() > deadline:
            return got
        await asyncio.sleep(0.1)


async def test_deployments_are_read_from_the_watch_not_listed_per_tick(
    cluster: Cluster, kube: NamespacedApi
) -> None:
    spec = make_spec()
    uid = await create_rollout(kube.custom, kube.namespace, spec)
    client = await connect(str(cluster.kubeconfig))
    try:
        client.watch_deployments([kube.namespace])
        assert client.informer is not None

        async def read() -> list[dict[str, Any]]:
            return await client.list_deployments(kube.namespace, ROLLOUT)

        informer = client.informer
        for _ in range(300):  # the first LIST lands within 30 s
            if kube.namespace in informer.synced:
                break
            await asyncio.sleep(0.1)
        assert await read() == []
        deployment = render_deployment(ROLLOUT, kube.namespace, uid, spec, "v1", "s3://m/v1", 1)
        await client.apply(deployment)
        found = await _eventually(read, lambda items: len(items) == 1)
        assert [item["metadata"]["name"] for item in found] == [deployment["metadata"]["name"]]
        await client.scale(kube.namespace, deployment["metadata"]["name"], 3)
        found = await _eventually(read, lambda items: items and items[0]["spec"]["replicas"] == 3)
        assert found[0]["spec"]["replicas"] == 3
        await client.delete_workload(kube.namespace, deployment["metadata"]["name"])
        assert await _eventually(read, lambda items: items == []) == []
        assert await client.list_deployments(kube.namespace, "another-rollout") == []
        assert client.requests["list deployment"] == 0  # every read above came from the watch
        assert informer.lists == 1
    finally:
        await client.close()
