"""Decision notifications and version fingerprints, through the running operator and the real Prometheus.

A local exporter, scraped by the sandbox's Prometheus, makes v2 answer half of its requests with 503; the
immediate error-rate guard rolls v2 back at its first evaluation in shadow. A webhook receiver gets the
initial deploy of v1 and the rollback, each with reason, message, phase, the versions' fingerprints and the
evidence. A notification URL where nothing listens never holds a rollout up and is counted in the
operator's `modelrollout_notification_failures_total`.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .helpers import (
    ENVIRONMENT,
    IMAGE,
    MODEL,
    Recorder,
    closed_port_url,
    create_rollout,
    eventually,
    patch_rollout,
    phase_is,
    recorder,
    rollout_spec,
    running_operator,
    sample_value,
    tracebacks_from_our_code,
)

if TYPE_CHECKING:
    from tests.conftest import Cluster, NamespacedApi

pytestmark = pytest.mark.integration
IMAGE_V2 = "ghcr.io/example/model-server:1.1@sha256:" + "ab" * 32  # a pinned digest stays in the fingerprint
RATE = 50.0  # requests per second per slice and version
ERRORS = {"v1": 0.01, "v2": 0.5}


@contextlib.contextmanager
def exporter(cluster: Cluster, namespace: str) -> Iterator[None]:
    """Serves steadily growing `model_requests_total` counters for v1 and v2, scraped as `namespace`."""
    began = time.monotonic()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            elapsed = time.monotonic() - began
            lines = ["# TYPE model_requests_total counter"]
            for version, share in ERRORS.items():
                for slice_name in ("ios", "default"):
                    total = RATE * elapsed
                    for code, value in (("200", total * (1 - share)), ("503", total * share)):
                        labels = f'model="{MODEL}",version="{version}",slice="{slice_name}",code="{code}"'
                        lines.append(f"model_requests_total{{{labels}}} {value:.3f}")
            body = ("\n".join(lines) + "\n").encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="exporter", daemon=True)
    thread.start()
    sandbox = cluster.require_sandbox()
    target = f"controller-{namespace}"
    sandbox.add_scrape_target(target, f"127.0.0.1:{server.server_address[1]}", {"namespace": namespace})
    try:
        yield
    finally:
        sandbox.remove_scrape_target(target)
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


async def received(hook: Recorder, name: str, reason: str, limit: float = 15.0) -> dict[str, Any]:
    """The first notification about rollout `name` with `reason` (they are sent in the background)."""
    deadline = time.monotonic() + limit
    while True:
        for body in hook.bodies():
            if body.get("rollout", {}).get("name") == name and body.get("reason") == reason:
                return body
        if time.monotonic() > deadline:
            got = [(b.get("rollout", {}).get("name"), b.get("reason")) for b in hook.bodies()]
            raise AssertionError(f"no {reason} notification for {name}; received {got}")
        await asyncio.sleep(0.2)


def fingerprint(image: str, version: str, environment: str) -> dict[str, Any]:
    return {"images": [image], "modelUri": f"s3://models/{MODEL}/{version}", "environment": environment}


def without_hash(record: dict[str, Any]) -> dict[str, Any]:
    printed = dict(record["fingerprint"])
    assert len(printed.pop("templateHash")) == 16, record
    return printed


async def test_decisions_are_notified_with_fingerprints_and_evidence(
    cluster: Cluster, kube: NamespacedApi, prometheus_url: str, tmp_path: Path
) -> None:
    ns, api = kube.namespace, kube.api
    nowhere = closed_port_url("/hook")
    with exporter(cluster, ns), recorder() as hook:
        async with running_operator(cluster.kubeconfig, api, ns, tmp_path) as operator:
            notify = [
                {"webhook": {"url": hook.url, "timeout": "2s"}},
                {"webhook": {"url": nowhere, "timeout": "2s"}},
            ]
            spec = rollout_spec(
                "v1",
                prometheus_url,
                virtual_service="notified",
                environment="env-1",
                rollback={"notify": notify, "scaleDownDelay": "1m"},
                analysis={
                    "minSamples": 10,
                    "guards": [{"name": "error-rate", "metric": "errorRate", "max": 0.05, "immediate": True}],
                },
            )
            await create_rollout(api, ns, "notified", spec)
            only_nowhere = {"notify": [{"webhook": {"url": nowhere, "timeout": "2s"}}]}
            await create_rollout(
                api,
                ns,
                "unheard",
                rollout_spec("v1", prometheus_url, virtual_service="unheard", rollback=only_nowhere),
            )

            # A notification URL nobody answers does not hold a rollout up; every failure is counted.
            await eventually(api, ns, "unheard", phase_is("Succeeded"), "v1 Succeeded", operator=operator)
            status = await eventually(
                api, ns, "notified", phase_is("Succeeded"), "v1 Succeeded", operator=operator
            )
            assert without_hash(status["stable"]) == fingerprint(IMAGE, "v1", "env-1")
            assert "candidate" not in status

            initial = await received(hook, "notified", "InitialDeploy")
            assert initial["rollout"] == {"name": "notified", "namespace": ns}
            assert initial["phase"] == "Succeeded"
            assert initial["message"] == "v1 is stable and serves 100% of every slice"
            assert initial["stable"] == status["stable"]
            assert initial["candidate"] is None
            assert initial["evidence"] == []
            # One tick can take two decisions (NewVersion and Deploying); their POSTs travel concurrently.
            assert sorted(b["reason"] for b in hook.bodies() if b["rollout"]["name"] == "notified") == [
                "Deploying",
                "InitialDeploy",
                "NewVersion",
            ]
            assert not any(b["rollout"]["name"] == "unheard" for b in hook.bodies())

            deadline = time.monotonic() + 10
            while True:  # three decisions each (NewVersion, Deploying, InitialDeploy), one failed POST each
                samples = await operator.metrics()
                failures = {
                    name: sample_value(
                        samples, "modelrollout_notification_failures_total", namespace=ns, rollout=name
                    )
                    for name in ("notified", "unheard")
                }
                if failures == {"notified": 3.0, "unheard": 3.0} or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.3)
            assert failures == {"notified": 3.0, "unheard": 3.0}
            assert f"notification to {nowhere} failed" in operator.log_text()

            # v2 (new image, new environment) errs on half its requests: rolled back at its first evaluation.
            await patch_rollout(
                api,
                ns,
                "notified",
                {
                    "spec": {
                        "model": {"version": "v2", "uri": f"s3://models/{MODEL}/v2"},
                        "template": {
                            "metadata": {"annotations": {ENVIRONMENT: "env-2"}},
                            "spec": {
                                "containers": [
                                    {**spec["template"]["spec"]["containers"][0], "image": IMAGE_V2}
                                ]
                            },
                        },
                    }
                },
            )
            status = await eventually(
                api, ns, "notified", phase_is("RolledBack"), "v2 rolled back", limit=60, operator=operator
            )
            assert status["history"][-1]["reason"] == "GuardFailed"
            assert status["history"][-2]["phase"] == "Shadow", "judged in shadow, before any user saw v2"
            assert without_hash(status["stable"]) == fingerprint(IMAGE, "v1", "env-1")
            assert without_hash(status["candidate"]) == fingerprint(IMAGE_V2, "v2", "env-2")
            assert (
                status["candidate"]["fingerprint"]["templateHash"]
                != status["stable"]["fingerprint"]["templateHash"]
            )

            rollback = await received(hook, "notified", "GuardFailed")
            assert rollback["phase"] == "RolledBack"
            assert rollback["message"] == status["message"]
            assert rollback["message"].startswith("slice ")
            assert "error-rate" in rollback["message"]
            assert rollback["message"].endswith("rolled back to v1")
            assert rollback["stable"] == status["stable"]
            assert rollback["candidate"] == status["candidate"]
            evidence = rollback["evidence"]
            assert evidence, rollback
            assert {(g["name"], g["verdict"]) for g in evidence} == {("error-rate", "Fail")}, evidence
            assert evidence == status["history"][-1]["evidence"]
            for guard in evidence:
                assert guard["threshold"] == 0.05
                assert guard["bound"] == "max"
                assert guard["canary"] == pytest.approx(0.5, abs=0.05)
                assert guard["samples"]["canary"] >= 10
            assert operator.running, operator.log_tail()
            assert tracebacks_from_our_code(operator.log_text()) == [], operator.log_tail()
