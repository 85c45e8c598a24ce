"""The real operator as a subprocess for one namespace, and the rollouts it serves: helpers for the tests
that steer a rollout through a running operator (the kubectl plugin's, Argo CD's actions, kstatus waits)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kubernetes.aio import client
from kubernetes.aio.client.exceptions import ApiException

from modelrollout.identity import GROUP, LOAD_DELAY_ANNOTATION, PLURAL, VERSION
from modelrollout.sandbox.processes import free_port
from tests.support import specs

if TYPE_CHECKING:
    from tests.conftest import Cluster

BIN = Path(sys.executable).parent


@contextlib.asynccontextmanager
async def operator(cluster: Cluster, namespace: str, log: Path) -> AsyncIterator[asyncio.subprocess.Process]:
    """`modelrollout operator` for one namespace, stopped (and waited for) however the test ends."""
    command = [
        str(BIN / "modelrollout"),
        "operator",
        "--kubeconfig",
        str(cluster.kubeconfig),
        "--namespace",
        namespace,
        "--metrics-address",
        f"127.0.0.1:{free_port()}",
        "--health-address",
        f"127.0.0.1:{free_port()}",
        "--status-refresh",
        "2s",
    ]
    with log.open("wb") as sink:
        process = await asyncio.create_subprocess_exec(
            *command, stdout=sink, stderr=asyncio.subprocess.STDOUT, start_new_session=True
        )
    try:
        yield process
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 20)
            except TimeoutError:
                process.kill()
                await asyncio.wait_for(process.wait(), 10)


async def delete_rollout(api: client.ApiClient, namespace: str, name: str) -> None:
    """Deletes the rollout and waits until it is gone (the running operator releases its finalizer)."""
    custom = client.CustomObjectsApi(api)
    with contextlib.suppress(ApiException):
        await custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
    for _ in range(60):
        try:
            await custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
        except ApiException as error:
            if error.status == 404:
                return
            raise
        await asyncio.sleep(0.5)


async def drop_finalizers(api: client.ApiClient, namespace: str, name: str) -> None:
    """After the operator stopped: let a leftover rollout (and so its namespace) be deleted."""
    with contextlib.suppress(ApiException):
        await client.CustomObjectsApi(api).patch_namespaced_custom_object(
            GROUP,
            VERSION,
            namespace,
            PLURAL,
            name,
            {"metadata": {"finalizers": None}},
            _content_type="application/merge-patch+json",
        )


def rollout_spec(version: str, prometheus: str, **overrides: Any) -> dict[str, Any]:
    """Two replicas that load in a second, one slice, 2s analysis; shadow and steps hold for ten minutes."""
    return specs.rollout_spec(
        version,
        template=specs.template(specs.container(), annotations={LOAD_DELAY_ANNOTATION: "1s"}),
        readiness={"minReadyReplicas": 1, "loadTimeout": "2m", "probePeriod": "1s"},
        traffic=specs.istio("recommender.example.svc.cluster.local"),
        slices=specs.PLATFORMS[:1],
        strategy={
            "shadow": {"duration": "10m"},
            "canary": {"steps": [{"weight": 20, "pause": "10m"}, {"weight": 50, "pause": "10m"}]},
        },
        analysis=specs.analysis_with(specs.error_guard("error-rate"), url=prometheus, interval="2s"),
        **overrides,
    )


async def create_rollout(
    api: client.ApiClient, namespace: str, name: str, spec: dict[str, Any]
) -> dict[str, Any]:
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ModelRollout",
        "metadata": {"name": name},
        "spec": spec,
    }
    created: Any = await client.CustomObjectsApi(api).create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, body
    )
    return dict(created)


async def read_rollout(api: client.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    found: Any = await client.CustomObjectsApi(api).get_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, name
    )
    return dict(found)


async def eventually(
    api: client.ApiClient,
    namespace: str,
    name: str,
    check: Callable[[dict[str, Any]], bool],
    what: str,
    limit: float = 90.0,
) -> dict[str, Any]:
    """Polls the rollout until `check` holds; fails naming `what` and the last status."""
    deadline = time.monotonic() + limit
    while True:
        found = await read_rollout(api, namespace, name)
        if check(found):
            return found
        if time.monotonic() > deadline:
            status = found.get("status") or {}
            raise AssertionError(
                f"{what} not reached in {limit}s: phase {status.get('phase')}, message {status.get('message')!r}"
            )
        await asyncio.sleep(0.5)


def phase(found: dict[str, Any]) -> str | None:
    value = (found.get("status") or {}).get("phase")
    return str(value) if value is not None else None
