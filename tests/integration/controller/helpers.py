"""What the controller's integration tests share: the operator as a real subprocess, specs, and local servers.

Every server here listens on 127.0.0.1 and every process is stopped by the context manager that started it,
however the test ends; rollouts the stopped operator left a finalizer on are released so their namespace
can be deleted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from kubernetes.aio import client
from kubernetes.aio.client.exceptions import ApiException
from prometheus_client.parser import text_string_to_metric_families

from modelrollout.identity import (
    ENVIRONMENT_ANNOTATION,
    GROUP,
    ISTIO_GROUP,
    ISTIO_VERSION,
    LOAD_DELAY_ANNOTATION,
    PLURAL,
    ROLLOUT_LABEL,
    VERSION,
    VERSION_LABEL,
    VIRTUAL_SERVICES,
)
from modelrollout.sandbox.processes import Process, free_port, http_ok, start, wait_ready
from tests.support import specs

ISTIO = (ISTIO_GROUP, ISTIO_VERSION, VIRTUAL_SERVICES)
MERGE = "application/merge-patch+json"
MODEL = specs.MODEL
IMAGE = specs.IMAGE
LOAD_DELAY = LOAD_DELAY_ANNOTATION
ENVIRONMENT = ENVIRONMENT_ANNOTATION


# Specs -------------------------------------------------------------------------------------------------------
def rollout_spec(
    version: str,
    prometheus: str,
    *,
    virtual_service: str = MODEL,
    image: str = IMAGE,
    environment: str | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """A small rollout: one replica that loads in half a second, one slice, 1s analysis, long pauses.

    Shadow and the canary steps last an hour, so without a `promote` the rollout holds where it is.
    """
    annotations = {LOAD_DELAY: "500ms"}
    if environment is not None:
        annotations[ENVIRONMENT] = environment
    base = specs.rollout_spec(
        version,
        template=specs.template(specs.container(image), annotations=annotations),
        replicas=1,
        readiness={"minReadyReplicas": 1, "loadTimeout": "2m", "probePeriod": "1s"},
        traffic=specs.istio(f"{MODEL}.example.svc.cluster.local", virtual_service),
        slices=specs.PLATFORMS[:1],
        strategy={
            "shadow": {"duration": "1h"},
            "canary": {"steps": [{"weight": 20, "pause": "1h"}, {"weight": 50, "pause": "1h"}]},
        },
        analysis=specs.analysis_with(specs.error_guard("error-rate"), url=prometheus, interval="1s"),
    )
    base["model"]["schema"] = {"version": 1, "features": [{"name": "user_id", "type": "string"}]}
    base["analysis"]["prometheus"]["timeout"] = "1s"
    return specs.merged(base, overrides)


def custom(api: client.ApiClient) -> Any:
    return client.CustomObjectsApi(api)


async def create_rollout(api: client.ApiClient, namespace: str, name: str, spec: dict[str, Any]) -> None:
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ModelRollout",
        "metadata": {"name": name},
        "spec": spec,
    }
    await custom(api).create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)


async def read_rollout(api: client.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    return dict(await custom(api).get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name))


async def patch_rollout(api: client.ApiClient, namespace: str, name: str, patch: dict[str, Any]) -> None:
    await custom(api).patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, name, patch, _content_type=MERGE
    )


async def read_virtual_service(api: client.ApiClient, namespace: str, name: str) -> dict[str, Any] | None:
    try:
        return dict(await custom(api).get_namespaced_custom_object(*ISTIO[:2], namespace, ISTIO[2], name))
    except ApiException as error:
        if error.status == 404:
            return None
        raise


async def deployment_versions(api: client.ApiClient, namespace: str, rollout: str) -> set[str]:
    """Model versions that have a Deployment for the rollout."""
    found = await client.AppsV1Api(api).list_namespaced_deployment(
        namespace, label_selector=f"{ROLLOUT_LABEL}={rollout}"
    )
    return {str(((item.metadata and item.metadata.labels) or {}).get(VERSION_LABEL)) for item in found.items}


def status_of(found: dict[str, Any]) -> dict[str, Any]:
    return dict(found.get("status") or {})


def condition(status: dict[str, Any], kind: str) -> dict[str, Any] | None:
    return next((c for c in status.get("conditions") or [] if c.get("type") == kind), None)


def describe(status: dict[str, Any]) -> str:
    conditions = {
        c["type"]: (c["status"], c["reason"], c.get("message", "")) for c in status.get("conditions") or []
    }
    return (
        f"phase {status.get('phase')}, step {status.get('step')}, weight {status.get('canaryWeight')}, "
        f"message {status.get('message')!r}, conditions {conditions}"
    )


async def eventually(
    api: client.ApiClient,
    namespace: str,
    name: str,
    check: Callable[[dict[str, Any]], bool],
    what: str,
    limit: float = 60.0,
    operator: Operator | None = None,
) -> dict[str, Any]:
    """Polls the rollout's status until `check` holds; fails naming `what`, the last status and the log."""
    deadline = time.monotonic() + limit
    while True:
        status = status_of(await read_rollout(api, namespace, name))
        if check(status):
            return status
        if time.monotonic() > deadline:
            log = f"\noperator log:\n{operator.log_tail()}" if operator else ""
            raise AssertionError(f"{name}: {what} not reached in {limit:.0f}s: {describe(status)}{log}")
        await asyncio.sleep(0.25)


def phase_is(*phases: str) -> Callable[[dict[str, Any]], bool]:
    return lambda status: status.get("phase") in phases


async def release_rollouts(api: client.ApiClient, namespace: str) -> None:
    """After the operator stopped: drop the finalizers it left, so the rollouts (and namespace) can go."""
    with contextlib.suppress(ApiException):
        found = await custom(api).list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)
        for item in found.get("items", []):
            if item["metadata"].get("finalizers"):
                with contextlib.suppress(ApiException):
                    await patch_rollout(
                        api, namespace, item["metadata"]["name"], {"metadata": {"finalizers": None}}
                    )


# The operator ------------------------------------------------------------------------------------------------
class Operator:
    """`modelrollout operator` for one namespace as a subprocess, metrics and health on 127.0.0.1."""

    def __init__(
        self,
        kubeconfig: Path,
        namespace: str,
        logs: Path,
        log_format: str = "text",
        status_refresh: str = "2s",
    ) -> None:
        self.kubeconfig = kubeconfig
        self.namespace = namespace
        self.log_format = log_format
        self.status_refresh = status_refresh
        self.log = logs / f"operator-{namespace}-{log_format}.log"
        self.metrics_port = free_port()
        self.health_port = free_port()
        self.process: Process | None = None

    def start(self, timeout: float = 30.0) -> None:
        argv = [
            sys.executable, "-m", "modelrollout.cli.main", "operator",
            f"--kubeconfig={self.kubeconfig}", f"--namespace={self.namespace}",
            f"--metrics-address=127.0.0.1:{self.metrics_port}",
            f"--health-address=127.0.0.1:{self.health_port}",
            f"--log-format={self.log_format}", f"--status-refresh={self.status_refresh}",
        ]  # fmt: skip
        self.process = start("operator", argv, self.log)
        wait_ready(self.process, http_ok(f"http://127.0.0.1:{self.health_port}/healthz"), timeout)

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.alive()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def log_tail(self, chars: int = 6000) -> str:
        return self.log_text()[-chars:]

    async def metrics(self) -> list[tuple[str, dict[str, str], float]]:
        return await scrape(f"http://127.0.0.1:{self.metrics_port}/metrics")


async def scrape(url: str) -> list[tuple[str, dict[str, str], float]]:
    """Every sample of a Prometheus text endpoint as (name, labels, value)."""
    async with httpx.AsyncClient() as http:
        response = await http.get(url, timeout=5)
    response.raise_for_status()
    return [
        (sample.name, dict(sample.labels), float(sample.value))
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    ]


def sample_value(samples: list[tuple[str, dict[str, str], float]], name: str, **labels: str) -> float | None:
    """The value of the one sample named `name` whose labels include `labels`, or None."""
    for sample, have, value in samples:
        if sample == name and all(have.get(k) == v for k, v in labels.items()):
            return value
    return None


@contextlib.asynccontextmanager
async def running_operator(
    kubeconfig: Path, api: client.ApiClient, namespace: str, logs: Path, log_format: str = "text"
) -> AsyncIterator[Operator]:
    """Starts the operator; stops it and releases its finalizers however the test ends."""
    operator = Operator(kubeconfig, namespace, logs, log_format)
    try:
        await asyncio.to_thread(operator.start)
        yield operator
    finally:
        await asyncio.to_thread(operator.stop)
        await release_rollouts(api, namespace)


def tracebacks_from_our_code(log: str) -> list[str]:
    """Tracebacks in an operator log (text or JSON lines) with a frame in the modelrollout package."""
    chunks = log.split("Traceback (most recent call last)")[1:]
    return [chunk[:2000] for chunk in chunks if "modelrollout/" in chunk[:4000]]


# A local HTTP endpoint that records what it receives ------------------------------------------------------------
Answer = tuple[int, bytes, float]  # HTTP status, body, delay before answering (seconds)


def json_answer(payload: Any, status: int = 200) -> Answer:
    return status, json.dumps(payload).encode(), 0.0


@dataclass
class Recorder:
    """An HTTP server on 127.0.0.1 that records every POSTed JSON body and answers with `answer`."""

    answer: Answer = field(default_factory=lambda: json_answer({"ok": True}))
    received: list[dict[str, Any]] = field(default_factory=list)
    port: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def bodies(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.received)

    def count(self) -> int:
        with self.lock:
            return len(self.received)


@contextlib.contextmanager
def recorder(answer: Answer | None = None) -> Iterator[Recorder]:
    state = Recorder() if answer is None else Recorder(answer=answer)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            try:
                body = json.loads(raw)
            except ValueError:
                body = {"unparsed": raw.decode(errors="replace")}
            with state.lock:
                state.received.append(body)
                status, payload, delay = state.answer
            if delay:
                time.sleep(delay)
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except OSError:
                pass  # the client gave up waiting (a timeout is what the test asked for)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.block_on_close = False
    state.port = int(server.server_address[1])
    thread = threading.Thread(target=server.serve_forever, name="recorder", daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def closed_port_url(path: str = "") -> str:
    """A URL on 127.0.0.1 where nothing listens (the port was free a moment ago)."""
    return f"http://127.0.0.1:{free_port()}{path}"
