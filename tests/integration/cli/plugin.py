"""Helpers for the plugin's integration tests: run it as a real subprocess, make rollouts, read them back."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes.aio import client

from modelrollout.identity import GROUP, LOAD_DELAY_ANNOTATION, PLURAL, VERSION
from tests.support import specs

BIN = Path(sys.executable).parent
PLUGIN = BIN / "kubectl-modelrollout"
COMMAND_ID = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ-[0-9a-f]{6}"


@dataclass
class Result:
    code: int
    out: str
    err: str

    def __str__(self) -> str:
        return f"exit {self.code}\nstdout:\n{self.out}\nstderr:\n{self.err}"


async def plugin(kubeconfig: Path, namespace: str, *args: str, limit: float = 120.0) -> Result:
    """Runs the installed console script `kubectl-modelrollout` with kubectl's connection flags."""
    assert PLUGIN.is_file(), f"{PLUGIN} is missing: install the project (make venv)"
    process = await asyncio.create_subprocess_exec(
        str(PLUGIN),
        *args,
        "--kubeconfig",
        str(kubeconfig),
        "-n",
        namespace,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "COLUMNS": "200"},
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), limit)
    except TimeoutError:
        process.kill()
        out, err = await process.communicate()
        raise AssertionError(
            f"kubectl-modelrollout {' '.join(args)} did not finish in {limit}s:\n{out.decode()}\n{err.decode()}"
        ) from None
    return Result(int(process.returncode or 0), out.decode(), err.decode())


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
