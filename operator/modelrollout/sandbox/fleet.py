"""The simulated fleet: one real model server process per model version, built on `modelrollout.serving`.

Each server answers like the scenario says its version does, per slice: a share of requests fails with HTTP
500, latencies follow a lognormal through the given p50 and p99, and scores follow the given distribution.
It reports model-ready only after the version's load time and warm-up. `Fleet` starts and stops the servers
on free 127.0.0.1 ports, registers each with the sandbox's Prometheus (file-based discovery), and maps
versions to endpoints for the traffic generator.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import logging
import os
import random
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from modelrollout.api.common import seconds
from modelrollout.api.spec import Slice
from modelrollout.sandbox.processes import Process, SandboxError, free_port, http_ok, start, wait_ready
from modelrollout.sandbox.scenario import (
    LatencySpec,
    ResolvedBehaviour,
    Scenario,
    ScoreSpec,
    VersionBehaviour,
)
from modelrollout.serving.app import (
    DEFAULT_READY_PATH,
    LIVE_PATH,
    READY_PATH_ENV,
    PredictionError,
    RequestContext,
)
from modelrollout.serving.slices import SLICES_ENV

log = logging.getLogger(__name__)

BEHAVIOUR_ENV = "MODELROLLOUT_FLEET_BEHAVIOUR"
SEED_ENV = "MODELROLLOUT_FLEET_SEED"
SERVER_MODULE = "modelrollout.sandbox.fleet_server"
MAX_LATENCY = 60.0  # seconds; a cap so that a far lognormal tail cannot hold a request for minutes


def sample_latency(spec: LatencySpec, rng: random.Random) -> float:
    """One latency in seconds from the lognormal through spec's p50 and p99."""
    mu, sigma = spec.lognormal()
    return min(rng.lognormvariate(mu, sigma), MAX_LATENCY)


def sample_score(spec: ScoreSpec, rng: random.Random) -> float:
    """One prediction score from spec's distribution."""
    if spec.beta is not None:
        return rng.betavariate(*spec.beta)
    if spec.uniform is not None:
        return rng.uniform(*spec.uniform)
    assert spec.constant is not None
    return spec.constant


def version_rng(seed: int, version: str) -> random.Random:
    """The random numbers of one version's server: reproducible per (seed, version)."""
    return random.Random(f"{seed}:{version}")


class SimulatedModel:
    """A ServedModel whose load time, errors, latency and scores follow a VersionBehaviour."""

    def __init__(self, behaviour: VersionBehaviour, rng: random.Random | None = None) -> None:
        self.behaviour = behaviour
        self.rng = rng or random.Random()
        self._resolved: dict[str, ResolvedBehaviour] = {}
        self.loaded = False
        self.fail_requested = False
        self.load_seconds = seconds(behaviour.load_time)
        if behaviour.load_time_max is not None:  # drawn only then: other scenarios keep their random sequence
            self.load_seconds = self.rng.uniform(
                self.load_seconds, max(self.load_seconds, seconds(behaviour.load_time_max))
            )

    def for_slice(self, slice_name: str) -> ResolvedBehaviour:
        if slice_name not in self._resolved:
            self._resolved[slice_name] = self.behaviour.for_slice(slice_name)
        return self._resolved[slice_name]

    async def load(self) -> None:
        await asyncio.sleep(self.load_seconds)
        if self.behaviour.fail_load:
            raise RuntimeError("simulated load failure (failLoad is set for this version)")
        if self.fail_requested:
            raise RuntimeError("simulated load failure (requested for this replica)")
        self.loaded = True

    async def warmup(self) -> None:
        if not self.loaded:
            raise RuntimeError("warm-up before the model loaded")
        default = self.behaviour.for_slice("default")
        for _ in range(self.behaviour.warmup_inferences):
            await asyncio.sleep(seconds(default.latency.p50))
            sample_score(default.score, self.rng)

    async def predict(self, features: Mapping[str, Any], context: RequestContext) -> float:
        behaviour = self.for_slice(context.slice)
        await asyncio.sleep(sample_latency(behaviour.latency, self.rng))
        if self.rng.random() < behaviour.error_rate:
            raise PredictionError(
                f"simulated error (error rate {behaviour.error_rate:g} in slice {context.slice})"
            )
        return sample_score(behaviour.score, self.rng)


# The fleet manager ---------------------------------------------------------------------------------------
class ScrapeTargets(Protocol):
    """What the fleet needs from the sandbox: a log directory and Prometheus file-based discovery."""

    @property
    def logs(self) -> Path: ...

    def add_scrape_target(self, name: str, address: str, labels: dict[str, str] | None = None) -> None: ...

    def remove_scrape_target(self, name: str) -> None: ...


@dataclass(frozen=True)
class FleetMember:
    """A running server of one version."""

    version: str
    uri: str
    port: int
    process: Process
    target: str

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"


class Fleet:
    """Model server processes per version, scraped by the sandbox's Prometheus."""

    def __init__(
        self,
        targets: ScrapeTargets,
        model: str,
        slices: Sequence[Slice],
        behaviours: Mapping[str, VersionBehaviour],
        *,
        uris: Mapping[str, str] | None = None,
        seed: int = 1,
        python: str = sys.executable,
        start_timeout: float = 30.0,
        ready_path: str = DEFAULT_READY_PATH,
        namespace: str = "default",
    ) -> None:
        self.targets = targets
        self.namespace = namespace
        self.model = model
        self.slices = list(slices)
        self.behaviours = dict(behaviours)
        self.uris = dict(uris or {})
        self.seed = seed
        self.python = python
        self.start_timeout = start_timeout
        self.ready_path = ready_path
        self._members: dict[str, FleetMember] = {}
        self._lock = threading.Lock()
        self._atexit_registered = False

    @classmethod
    def from_scenario(cls, targets: ScrapeTargets, scenario: Scenario, **options: Any) -> Fleet:
        """The fleet of a scenario: its versions' behaviour, slices, model name and URIs."""
        spec = scenario.rollout.spec
        uris = {spec.model.version: spec.model.uri, scenario.update.model.version: scenario.update.model.uri}
        return cls(
            targets,
            spec.model.name,
            spec.slices,
            scenario.fleet.versions,
            uris=uris,
            seed=scenario.fleet.seed,
            ready_path=spec.readiness.model_ready_path,
            **options,
        )

    # Queries -----------------------------------------------------------------------------------------
    @property
    def endpoints(self) -> dict[str, str]:
        """Running versions -> '127.0.0.1:port'."""
        with self._lock:
            return {version: member.endpoint for version, member in self._members.items()}

    def endpoint(self, version: str) -> str | None:
        """The endpoint of a running version (None when it is not running); a traffic generator lookup."""
        with self._lock:
            member = self._members.get(version)
        return member.endpoint if member is not None else None

    def member(self, version: str) -> FleetMember | None:
        with self._lock:
            return self._members.get(version)

    def running(self) -> list[str]:
        with self._lock:
            return [v for v, m in self._members.items() if m.process.alive()]

    def model_ready(self, version: str) -> bool:
        """Whether the version's server answers 200 on its model-ready path."""
        endpoint = self.endpoint(version)
        return endpoint is not None and http_ok(f"http://{endpoint}{self.ready_path}")()

    # Lifecycle ---------------------------------------------------------------------------------------
    def start(self, version: str, uri: str | None = None) -> str:
        """Starts the version's server (if not running) and returns its endpoint once it serves /live.

        The model is not ready yet at that point: readiness follows after the version's load time.
        """
        existing = self.member(version)
        if existing is not None and existing.process.alive():
            return existing.endpoint
        if existing is not None:
            self.stop(version)
        behaviour = self.behaviours.get(version)
        if behaviour is None:
            raise SandboxError(
                f"fleet: no behaviour for version {version!r} (known: {', '.join(self.behaviours)})"
            )
        port = free_port()
        env = {
            "MODEL_NAME": self.model,
            "MODEL_VERSION": version,
            "MODEL_URI": uri or self.uris.get(version, f"sandbox://{self.model}/{version}"),
            SLICES_ENV: json.dumps([s.wire() for s in self.slices]),
            BEHAVIOUR_ENV: behaviour.model_dump_json(by_alias=True, exclude_none=True),
            SEED_ENV: str(self.seed),
            READY_PATH_ENV: self.ready_path,
            "PYTHONUNBUFFERED": "1",
            # prometheus_client's *_created series would only add noise to the sandbox's Prometheus.
            "PROMETHEUS_DISABLE_CREATED_SERIES": "true",
        }
        argv = [self.python, "-m", SERVER_MODULE, "--host", "127.0.0.1", "--port", str(port)]
        argv += ["--parent-pid", str(os.getpid())]
        ident = f"{self.namespace}-{self.model}-{version}"
        process = start(f"fleet-{version}", argv, self.targets.logs / f"fleet-{ident}.log", env=env)
        member = FleetMember(version, env["MODEL_URI"], port, process, target=f"fleet-{ident}")
        with self._lock:
            self._members[version] = member
        if not self._atexit_registered:
            atexit.register(self.stop_all)
            self._atexit_registered = True
        try:
            wait_ready(process, http_ok(f"http://{member.endpoint}{LIVE_PATH}"), self.start_timeout)
        except BaseException:
            self.stop(version)
            raise
        # Only target labels that no fleet metric carries: a clash would rename the metric's label.
        # `namespace` as Kubernetes service discovery would attach it to a pod's series.
        self.targets.add_scrape_target(
            member.target, member.endpoint, {"component": "fleet", "namespace": self.namespace}
        )
        log.info("fleet: %s %s serving on %s", self.model, version, member.endpoint)
        return member.endpoint

    def stop(self, version: str) -> None:
        """Stops the version's server and removes its scrape target."""
        with self._lock:
            member = self._members.pop(version, None)
        if member is None:
            return
        self.targets.remove_scrape_target(member.target)
        member.process.stop()
        log.info("fleet: %s %s stopped", self.model, version)

    def stop_all(self) -> None:
        for version in list(self.endpoints):
            self.stop(version)

    async def astart(self, version: str, uri: str | None = None) -> str:
        """start() without blocking the event loop."""
        return await asyncio.to_thread(self.start, version, uri)

    async def astop(self, version: str) -> None:
        await asyncio.to_thread(self.stop, version)

    def wait_model_ready(self, version: str, timeout: float = 60.0) -> None:
        """Waits until the version reports its model ready; SandboxError names its log when it does not."""
        member = self.member(version)
        if member is None:
            raise SandboxError(f"fleet: version {version!r} is not running")
        wait_ready(member.process, http_ok(f"http://{member.endpoint}{self.ready_path}"), timeout)

    def __enter__(self) -> Fleet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()
