"""Deleting a ModelRollout: the running operator lets it go and drops its metric series.

A dashboard or an alert on `modelrollout_phase` must not keep showing a rollout that no longer exists.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from kubernetes.aio import client
from kubernetes.aio.client.exceptions import ApiException

from .helpers import (
    GROUP,
    PLURAL,
    VERSION,
    create_rollout,
    custom,
    eventually,
    phase_is,
    read_rollout,
    rollout_spec,
    running_operator,
    sample_value,
    tracebacks_from_our_code,
)

if TYPE_CHECKING:
    from tests.conftest import Cluster, NamespacedApi

pytestmark = pytest.mark.integration


async def rollout_exists(api: client.ApiClient, namespace: str, name: str) -> bool:
    try:
        await read_rollout(api, namespace, name)
    except ApiException as error:
        if error.status == 404:
            return False
        raise
    return True


async def test_a_deleted_rollout_leaves_no_metric_series(
    cluster: Cluster, kube: NamespacedApi, prometheus_url: str, tmp_path: Path
) -> None:
    ns, api = kube.namespace, kube.api
    async with running_operator(cluster.kubeconfig, api, ns, tmp_path) as operator:
        await create_rollout(api, ns, "kept", rollout_spec("v1", prometheus_url, virtual_service="kept"))
        await create_rollout(
            api, ns, "deleted", rollout_spec("v1", prometheus_url, virtual_service="deleted")
        )
        for name in ("kept", "deleted"):
            await eventually(api, ns, name, phase_is("Succeeded"), "v1 Succeeded", operator=operator)
        samples = await operator.metrics()
        assert (
            sample_value(samples, "modelrollout_phase", namespace=ns, rollout="deleted", phase="Succeeded")
            == 1
        )

        await custom(api).delete_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "deleted")
        deadline = time.monotonic() + 30
        while await rollout_exists(api, ns, "deleted"):  # the operator releases its finalizer
            assert time.monotonic() < deadline, f"rollout not released:\n{operator.log_tail()}"
            await asyncio.sleep(0.2)

        deadline = time.monotonic() + 10
        while True:
            samples = await operator.metrics()
            left = sorted({name for name, labels, _ in samples if labels.get("rollout") == "deleted"})
            if not left or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.3)
        assert left == [], f"series of the deleted rollout remain: {left}"
        assert (
            sample_value(samples, "modelrollout_phase", namespace=ns, rollout="kept", phase="Succeeded") == 1
        )
        assert operator.running, operator.log_tail()
        assert tracebacks_from_our_code(operator.log_text()) == [], operator.log_tail()
