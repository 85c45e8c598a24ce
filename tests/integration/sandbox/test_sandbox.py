"""The sandbox is a real cluster: version, scheduling onto kwok nodes, simulated model load, Istio's schema,
Prometheus discovery at runtime, and clear failures."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import stat
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from kubernetes.aio import client
from kubernetes.aio.client.exceptions import ApiException

from modelrollout.sandbox import cluster, tools
from modelrollout.sandbox.cluster import NODE_NAMES, Sandbox
from modelrollout.sandbox.processes import SandboxError, free_port
from tests.conftest import Cluster, NamespacedApi

pytestmark = pytest.mark.integration


async def test_version_is_the_pinned_kubernetes_release(api_client: client.ApiClient) -> None:
    info = await client.VersionApi(api_client).get_code()
    assert info.git_version == tools.KUBERNETES_VERSION
    assert info.git_version != "v0.0.0-master"


async def test_pods_turn_ready_only_after_their_simulated_load_delay(kube: NamespacedApi) -> None:
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "slow-model"},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "slow-model"}},
            "template": {
                "metadata": {
                    "labels": {"app": "slow-model"},
                    "annotations": {"sandbox.modelrollout.io/load-delay": "3s"},
                },
                "spec": {"containers": [{"name": "server", "image": "example.invalid/model-server:1"}]},
            },
        },
    }
    await kube.apps.create_namespaced_deployment(kube.namespace, deployment)
    running_at: dict[str, float] = {}
    ready_at: dict[str, float] = {}
    nodes: dict[str, str] = {}
    deadline = time.monotonic() + 40
    while len(ready_at) < 3 and time.monotonic() < deadline:
        pods = await kube.core.list_namespaced_pod(kube.namespace, label_selector="app=slow-model")
        now = time.monotonic()
        for pod in pods.items:
            name = pod.metadata.name
            if pod.status.pod_ip and name not in running_at:
                running_at[name] = now
                nodes[name] = pod.spec.node_name
            ready = any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])
            if ready and name not in ready_at:
                ready_at[name] = now
        await asyncio.sleep(0.05)
    assert len(ready_at) == 3, f"only {len(ready_at)} of 3 pods became Ready: {ready_at}"
    assert set(nodes.values()) <= set(NODE_NAMES), nodes
    for name, ready in ready_at.items():
        loaded_for = ready - running_at[name]
        assert loaded_for >= 2.9, (
            f"{name} was Ready {loaded_for:.2f}s after it started, before its 3s load delay"
        )
        assert loaded_for <= 10, f"{name} took {loaded_for:.2f}s to become Ready after a 3s load delay"
    for _ in range(100):
        status = (
            await kube.apps.read_namespaced_deployment(name="slow-model", namespace=kube.namespace)
        ).status
        if status.ready_replicas == 3:
            break
        await asyncio.sleep(0.1)
    assert status.ready_replicas == 3


def _virtual_service(weight: Any, header_match: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": "recommender"},
        "spec": {
            "hosts": ["recommender"],
            "http": [
                {
                    "name": "ios",
                    "match": [{"headers": {"x-platform": header_match}}],
                    "route": [
                        {"destination": {"host": "recommender-v1"}, "weight": weight},
                        {"destination": {"host": "recommender-v2"}, "weight": 10},
                    ],
                }
            ],
        },
    }


async def _create_vs(kube: NamespacedApi, body: dict[str, Any]) -> dict[str, Any]:
    return dict(
        await kube.custom.create_namespaced_custom_object(
            "networking.istio.io", "v1", kube.namespace, "virtualservices", body
        )
    )


async def test_istio_schema_accepts_valid_and_rejects_invalid_virtual_services(kube: NamespacedApi) -> None:
    stored = await _create_vs(kube, _virtual_service(90, {"exact": "ios"}))
    assert stored["spec"]["http"][0]["route"][0]["weight"] == 90

    with pytest.raises(ApiException) as fractional:
        await _create_vs(kube, _virtual_service("90.5", {"exact": "ios"}))
    assert fractional.value.status == 422
    assert "weight" in fractional.value.body

    with pytest.raises(ApiException) as both:
        await _create_vs(kube, _virtual_service(90, {"exact": "ios", "regex": "i.*"}))
    assert both.value.status == 422
    assert "x-platform" in both.value.body or "headers" in both.value.body


class _Metrics(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b'# TYPE sandbox_probe_total counter\nsandbox_probe_total{source="runtime"} 7\n'
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def metrics_server() -> Iterator[int]:
    server = HTTPServer(("127.0.0.1", 0), _Metrics)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


async def test_prometheus_scrapes_a_target_added_at_runtime(
    cluster: Cluster, prometheus_url: str, metrics_server: int
) -> None:
    sandbox = cluster.require_sandbox()
    sandbox.add_scrape_target("runtime-probe", f"127.0.0.1:{metrics_server}", {"team": "ml"})
    try:
        result: list[Any] = []
        async with httpx.AsyncClient(base_url=prometheus_url, timeout=5) as http:
            for _ in range(60):
                response = await http.get("/api/v1/query", params={"query": 'sandbox_probe_total{team="ml"}'})
                result = response.json()["data"]["result"]
                if result:
                    break
                await asyncio.sleep(0.5)
        assert result, "the runtime target was never scraped"
        assert result[0]["metric"]["source"] == "runtime"
        assert float(result[0]["value"][1]) == 7
    finally:
        sandbox.remove_scrape_target("runtime-probe")


def _no_process_of(root: Path) -> bool:
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if str(root) in (proc / "cmdline").read_bytes().decode(errors="replace"):
                    return False
            except OSError:
                continue
    return True


def test_a_taken_port_fails_fast_naming_the_component(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(SandboxError, match=rf"kube-apiserver: port 127.0.0.1:{port} is already in use"):
            Sandbox(tmp_path, ports={"kube-apiserver": port}).up()
        assert time.monotonic() - started < 5
    assert _no_process_of(tmp_path)


def test_a_missing_binary_fails_fast_naming_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELROLLOUT_KWOK", str(tmp_path / "no-such-kwok"))
    with pytest.raises(tools.ToolError, match=r"kwok: binary missing at .*no-such-kwok.*make tools"):
        Sandbox(tmp_path / "sandbox").up()
    assert _no_process_of(tmp_path)


def test_missing_istio_crds_fail_fast_naming_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        tools, "ISTIO_API", dataclasses.replace(tools.ISTIO_API, version="v0.0.0-never-fetched")
    )
    with pytest.raises(
        tools.ToolError, match=r"istio-api: file missing at .*v0\.0\.0-never-fetched.*make tools"
    ):
        Sandbox(tmp_path / "sandbox").up()
    assert _no_process_of(tmp_path)


def test_a_failed_routing_crd_apply_is_named_with_kubectl_output_and_nothing_is_left(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cluster, "routing_crds_manifest", lambda: '{"apiVersion": "v1", "kind": "Nope"}')
    root = tmp_path / "sandbox"
    with pytest.raises(
        SandboxError,
        match=r"kubectl apply of the routing CRDs \(Istio, Gateway API\) failed \(exit code 1\): .*Nope",
    ):
        Sandbox(root).up()
    assert _no_process_of(root)


def test_a_component_that_dies_at_start_is_named_with_its_log_and_nothing_is_left(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = tmp_path / "kube-scheduler"
    broken.write_text("#!/bin/sh\necho 'scheduler: cannot load config' >&2\nexit 3\n")
    broken.chmod(broken.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("MODELROLLOUT_KUBE_SCHEDULER", str(broken))
    root = tmp_path / "sandbox"
    with pytest.raises(SandboxError) as failure:
        Sandbox(root, ports={"kube-apiserver": free_port()}).up()
    message = str(failure.value)
    assert "kube-scheduler exited during start-up (exit code 3)" in message
    assert "scheduler: cannot load config" in message
    assert _no_process_of(root), "processes of the failed sandbox are still running"
    assert not (root / "state.json").exists()
    assert os.path.exists(root / "logs" / "etcd.log")
