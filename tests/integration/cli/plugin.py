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

GROUP, VERSION, PLURAL = "modelrollout.io", "v1alpha1", "modelrollouts"
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
    spec: dict[str, Any] = {
        "model": {"name": "recommender", "version": version, "uri": f"s3://models/recommender/{version}"},
        "template": {
            "metadata": {"annotations": {"sandbox.modelrollout.io/load-delay": "1s"}},
            "spec": {
                "containers": [
                    {
                        "name": "server",
                        "image": "ghcr.io/example/model-server:1.0",
                        "ports": [{"containerPort": 8080, "name": "http"}],
                    }
                ]
            },
        },
        "replicas": 2,
        "readiness": {"minReadyReplicas": 1, "loadTimeout": "2m", "probePeriod": "1s"},
        "traffic": {
            "istio": {"host": "recommender.example.svc.cluster.local", "virtualService": "recommender"}
        },
        "slices": [{"name": "ios", "match": {"headers": {"x-platform": {"exact": "ios"}}}}],
        "strategy": {
            "shadow": {"duration": "10m"},
            "canary": {"steps": [{"weight": 20, "pause": "10m"}, {"weight": 50, "pause": "10m"}]},
        },
        "analysis": {
            "interval": "2s",
            "prometheus": {"url": prometheus},
            "guards": [{"name": "error-rate", "metric": "errorRate", "max": 0.05}],
        },
    }
    spec.update(overrides)
    return spec


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
