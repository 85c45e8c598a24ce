"""A controller under test without a cluster: the real Reconciler over the in-memory FakeKube, a stub
Prometheus and stub webhooks behind httpx.MockTransport, and a clock the test moves by hand."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

import httpx

from modelrollout.analysis.prometheus import PrometheusPool
from modelrollout.controller import Reconciler, Runtime, TickReport
from modelrollout.controller.metrics import OperatorMetrics
from modelrollout.controller.outbound import Outbound
from modelrollout.identity import API_VERSION, KIND
from modelrollout.traffic import gatewayapi
from modelrollout.traffic.istio import observed_weights
from tests.support.fake_kube import FakeKube, merge_patch
from tests.support.world import T0, spec_dict

NAMESPACE, NAME = "ml", "recommender"


@dataclass
class PrometheusStub:
    """Answers the error-rate counts query from a table {(slice, version): (requests, errors)}.

    Anything else gets an empty vector. `status` other than 200 answers every query with that HTTP error.
    """

    counts: dict[tuple[str, str], tuple[float, float]] = field(default_factory=dict)
    status: int = 200
    queries: list[str] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    """The evaluation time (`time=`) of each query, in order."""
    conversions: dict[tuple[str, str], float] = field(default_factory=dict)
    """A/B: model_conversions_total's increase per (slice, version)."""
    warnings: list[str] = field(default_factory=list)
    """Prometheus' partial-data warnings, sent with every successful answer."""

    def healthy(self, versions: tuple[str, ...], slices: list[str], requests: float = 1000.0) -> None:
        self.counts = {(s, v): (requests, 0.0) for s in slices for v in versions}

    def handle(self, request: httpx.Request) -> httpx.Response:
        form = parse_qs(request.content.decode())
        query = form["query"][0]
        self.queries.append(query)
        self.times.append(float(form["time"][0]))
        if self.status != 200:
            body = {"status": "error", "errorType": "unavailable", "error": "stub says no"}
            return httpx.Response(self.status, content=json.dumps(body).encode())
        result: list[dict[str, Any]] = []
        if "model_conversions_total" in query:
            for (slice_name, version), value in self.conversions.items():
                result.append({"metric": {"slice": slice_name, "version": version}, "value": [0, str(value)]})
        elif "model_requests_total" in query:
            for (slice_name, version), (requests, errors) in self.counts.items():
                base = {"slice": slice_name, "version": version}
                result.append({"metric": {**base, "code": "200"}, "value": [0, str(requests - errors)]})
                result.append({"metric": {**base, "code": "503"}, "value": [0, str(errors)]})
        body: dict[str, Any] = {"status": "success", "data": {"resultType": "vector", "result": result}}
        if self.warnings:
            body["warnings"] = list(self.warnings)
        return httpx.Response(200, content=json.dumps(body).encode())


@dataclass
class HookStub:
    """Gate and notification endpoints: records each POSTed JSON body; `answer` decides the response."""

    received: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    answer: Callable[[str, dict[str, Any]], httpx.Response] = lambda url, body: httpx.Response(
        200, json={"allowed": True}
    )

    def handle(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content or b"{}")
        self.received.append((str(request.url), body))
        return self.answer(str(request.url), body)

    def to(self, url: str) -> list[dict[str, Any]]:
        return [body for where, body in self.received if where == url]


@dataclass
class Harness:
    """One rollout, its controller and the world around it."""

    kube: FakeKube = field(default_factory=FakeKube)
    prometheus: PrometheusStub = field(default_factory=PrometheusStub)
    hooks: HookStub = field(default_factory=HookStub)
    now: datetime = T0
    server_clock: bool = False
    """Time decisions as the operator does, by the API server's clock learnt by `kube.clock` (the fake's
    server clock is `now`), instead of handing `now` to the controller."""
    runtime: Runtime = field(init=False)
    reconciler: Reconciler = field(init=False)

    def __post_init__(self) -> None:
        self.kube.server_time = lambda: self.now
        self.restart()

    def restart(self) -> None:
        """A new operator process: fresh clients and caches over the same cluster, Prometheus and clock."""
        self.runtime = Runtime(
            kube=self.kube,
            outbound=Outbound(transport=httpx.MockTransport(self.hooks.handle)),
            metrics=OperatorMetrics(),
            status_refresh=60.0,
            clock=None if self.server_clock else lambda: self.now,
            prometheus=PrometheusPool(transport=httpx.MockTransport(self.prometheus.handle)),
        )
        self.reconciler = Reconciler(self.runtime)

    def create(self, **overrides: Any) -> dict[str, Any]:
        spec = spec_dict(**overrides)
        return self.kube.add_rollout(
            {
                "apiVersion": API_VERSION,
                "kind": KIND,
                "metadata": {"name": NAME, "namespace": NAMESPACE},
                "spec": spec,
            }
        )

    def patch(self, patch: dict[str, Any]) -> None:
        """A person's (or Argo CD's) change to the rollout, straight into the store."""
        stored = self.kube.rollout(NAMESPACE, NAME)
        updated = merge_patch(stored, patch)
        if "spec" in patch:
            updated["metadata"]["generation"] = int(stored["metadata"]["generation"]) + 1
        updated["metadata"]["resourceVersion"] = self.kube.next_version()
        self.kube.rollouts[(NAMESPACE, NAME)] = updated

    def set_version(self, version: str) -> None:
        self.patch({"spec": {"model": {"version": version, "uri": f"s3://models/recommender/{version}"}}})

    @property
    def status(self) -> dict[str, Any]:
        return dict(self.kube.rollout(NAMESPACE, NAME).get("status") or {})

    def condition(self, kind: str) -> dict[str, Any]:
        found = next((c for c in self.status.get("conditions", []) if c["type"] == kind), None)
        assert found is not None, f"no {kind} condition in {self.status.get('conditions')}"
        return dict(found)

    async def tick(self, seconds: float = 5.0) -> TickReport:
        """One reconcile at the current time, then time moves on; notifications are awaited."""
        report = await self.reconciler.tick(NAMESPACE, NAME)
        if self.runtime.background:
            await asyncio.gather(*list(self.runtime.background))
        self.now += timedelta(seconds=seconds)
        return report

    async def run_until(self, check: Callable[[dict[str, Any]], bool], what: str, limit: int = 100) -> None:
        for _ in range(limit):
            await self.tick()
            if check(self.status):
                return
        raise AssertionError(
            f"{what} not reached in {limit} ticks: {self.status.get('phase')} {self.status.get('message')}"
        )

    def virtual_service(self) -> dict[str, Any]:
        found = self.kube.virtual_service(NAMESPACE, "recommender")
        assert found is not None, "no VirtualService was written"
        return found

    def http_route(self) -> dict[str, Any]:
        found = self.kube.http_route(NAMESPACE, "recommender")
        assert found is not None, "no HTTPRoute was written"
        return found

    def weights(self) -> dict[str, int]:
        """Candidate percent per owned route, read back from the stored VirtualService (or HTTPRoute)."""
        if self.kube.http_route(NAMESPACE, "recommender") is not None:
            return gatewayapi.observed_weights(self.http_route()["spec"]["rules"])
        return observed_weights(self.virtual_service()["spec"]["http"])
