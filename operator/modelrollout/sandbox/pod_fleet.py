"""The model servers of a scenario as pods on the sandbox's real node, instead of local processes.

The operator's Deployments create them from the model-server image; the kubelet runs the startup and
readiness probes the operator rendered. `PodFleet` follows the rollout's pods and plays the parts the
cluster's data plane would: it hands the traffic generator the address of a *Ready* pod of a version (as
Envoy's endpoints hold only ready pods), counts the requests each pod incarnation was sent, and keeps the
sandbox's Prometheus scraping every running pod. Pod addresses exist only inside the real node's network
namespace (see `realnode`); nothing else is dialled.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import itertools
import logging
from collections import Counter
from dataclasses import dataclass
from typing import Any

import httpx

from modelrollout.identity import VERSION_LABEL
from modelrollout.kube import KubeApi
from modelrollout.sandbox.fleet import ScrapeTargets
from modelrollout.sandbox.pod_server import FAIL_LOAD_PATH
from modelrollout.sandbox.processes import SandboxError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PodView:
    """What the fleet needs of one pod, as the kubelet last reported it."""

    name: str
    version: str
    ip: str | None
    running: bool
    ready: bool
    restarts: int

    @property
    def incarnation(self) -> tuple[str, int]:
        """The pod and its container's restart count: one run of the model server."""
        return (self.name, self.restarts)

    @classmethod
    def of(cls, pod: dict[str, Any]) -> PodView:
        status = pod.get("status") or {}
        conditions = {c["type"]: c["status"] for c in status.get("conditions") or []}
        containers = status.get("containerStatuses") or []
        return cls(
            name=pod["metadata"]["name"],
            version=(pod["metadata"].get("labels") or {}).get(VERSION_LABEL, ""),
            ip=status.get("podIP"),
            running=bool(containers) and "running" in (containers[0].get("state") or {}),
            ready=conditions.get("Ready") == "True" and pod["metadata"].get("deletionTimestamp") is None,
            restarts=int(containers[0].get("restartCount") or 0) if containers else 0,
        )


class PodFleet:
    """Follows a rollout's pods on the real node: ready endpoints, per-pod request counts, scrape targets."""

    def __init__(
        self,
        kube: KubeApi,
        targets: ScrapeTargets,
        namespace: str,
        rollout: str,
        port: int,
        pod_network: str,
        refresh: float = 0.25,
    ) -> None:
        self.kube = kube
        self.targets = targets
        self.namespace = namespace
        self.rollout = rollout
        self.port = port
        self.network = ipaddress.ip_network(pod_network)
        self.refresh = refresh
        self.pods: dict[str, PodView] = {}
        self.sent: Counter[tuple[str, int]] = Counter()
        """Requests handed to each pod incarnation (pod name, restart count)."""
        self.ever_ready: set[tuple[str, int]] = set()
        self._turn = itertools.count()
        self._targets: set[str] = set()
        self._task: asyncio.Task[None] | None = None

    # What the runner and the traffic generator use ---------------------------------------------------------
    def endpoint(self, version: str) -> str | None:
        """A ready pod of the version, in turn; None while it has none (Envoy: no healthy upstream)."""
        ready = sorted(
            (p for p in self.pods.values() if p.version == version and p.ready and p.ip), key=lambda p: p.name
        )
        if not ready:
            return None
        pod = ready[next(self._turn) % len(ready)]
        self.sent[pod.incarnation] += 1
        return f"{pod.ip}:{self.port}"

    def ready_count(self, version: str) -> int:
        return sum(1 for p in self.pods.values() if p.version == version and p.ready)

    async def astart(self, version: str, uri: str | None = None) -> str:
        """The operator's Deployments start the pods; nothing to start here."""
        return version

    async def astop(self, version: str) -> None:
        raise SandboxError("stopping a version's server is not a fault the real node's pods support")

    def stop_all(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
        for target in self._targets:
            self.targets.remove_scrape_target(target)
        self._targets.clear()

    async def start(self) -> None:
        await self.sync()
        self._task = asyncio.create_task(self._follow())

    async def fail_load(self, version: str, within: float = 60.0) -> str:
        """Makes one replica of `version` whose model is still loading fail its load; returns its name."""
        deadline = asyncio.get_running_loop().time() + within
        async with httpx.AsyncClient(timeout=3.0) as client:
            while asyncio.get_running_loop().time() < deadline:
                for pod in sorted(self.pods.values(), key=lambda p: p.name):
                    if pod.version != version or pod.ready or not pod.running or not pod.ip:
                        continue
                    with contextlib.suppress(httpx.HTTPError):
                        answer = await client.post(
                            f"http://{self._checked(pod.ip)}:{self.port}{FAIL_LOAD_PATH}"
                        )
                        if answer.status_code == 200:
                            return pod.name
                await asyncio.sleep(0.5)
        raise SandboxError(f"no loading replica of {version} to make fail within {within:.0f}s")

    # Following the pods -----------------------------------------------------------------------------------
    async def _follow(self) -> None:
        while True:
            await asyncio.sleep(self.refresh)
            try:
                await self.sync()
            except Exception as error:  # the next refresh tries again; a test fails on what it observes
                log.warning("pod fleet: %s", error)

    async def sync(self) -> None:
        pods = [PodView.of(p) for p in await self.kube.list_pods(self.namespace, self.rollout)]
        self.pods = {p.name: p for p in pods}
        self.ever_ready |= {p.incarnation for p in pods if p.ready}
        wanted: dict[str, PodView] = {}
        for pod in pods:
            if pod.running and pod.ip:
                wanted[f"pod-{self.namespace}-{pod.name}-{pod.restarts}"] = pod
        for name, pod in wanted.items():
            if name not in self._targets:
                labels = {"component": "fleet", "namespace": self.namespace, "pod": pod.name,
                          "restarts": str(pod.restarts)}  # fmt: skip
                self.targets.add_scrape_target(name, f"{self._checked(pod.ip or '')}:{self.port}", labels)
                self._targets.add(name)
        for name in self._targets - set(wanted):
            self.targets.remove_scrape_target(name)
            self._targets.discard(name)

    def _checked(self, ip: str) -> str:
        if ipaddress.ip_address(ip) not in self.network:
            raise SandboxError(f"pod address {ip} is outside the real node's pod network {self.network}")
        return ip
