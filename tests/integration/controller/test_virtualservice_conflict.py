"""Someone else writes the VirtualService between the operator's read and its write.

The reconciler runs in this process against the real API server (a real `Kube`, no operator subprocess), so
the test decides when each tick runs. The only fault injected: `Kube.get_virtual_service` is wrapped so that
right after the operator's read a separate client changes the live object. The operator's merge-patch then
carries a stale resourceVersion, the API server answers 409, and the operator must read again and merge onto
the fresh copy: the foreign change survives, in place, and the owned routes are right.
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from modelrollout.controller import Reconciler, Runtime
from modelrollout.controller.metrics import OperatorMetrics
from modelrollout.controller.outbound import Outbound
from modelrollout.identity import CLAIM_ANNOTATION, service_host
from modelrollout.kube import KubeApi, KubeError, connect

from .helpers import (
    ISTIO,
    MERGE,
    MODEL,
    condition,
    create_rollout,
    custom,
    patch_rollout,
    read_rollout,
    read_virtual_service,
    rollout_spec,
    status_of,
)

if TYPE_CHECKING:
    from tests.conftest import Cluster, NamespacedApi

pytestmark = pytest.mark.integration
NAME = "raced"
VS = "shared"

TEAM_DEBUG: dict[str, Any] = {
    "name": "team-debug",
    "match": [{"headers": {"x-debug": {"exact": "1"}}}],
    "route": [{"destination": {"host": "debug.example.svc.cluster.local", "port": {"number": 8080}}}],
}
LEGACY: dict[str, Any] = {
    "name": "legacy",
    "match": [{"headers": {"x-legacy": {"exact": "1"}}}],
    "route": [{"destination": {"host": "legacy.example.svc.cluster.local", "port": {"number": 8080}}}],
}
INTRUDER: dict[str, Any] = {
    "name": "intruder",
    "match": [{"headers": {"x-intruder": {"exact": "1"}}}],
    "route": [{"destination": {"host": "intruder.example.svc.cluster.local", "port": {"number": 8080}}}],
}
OWNED = ["modelrollout-ios", "modelrollout-default"]


class Race:
    """Wraps the operator's VirtualService read: when armed, `change` edits the live object right after it."""

    def __init__(self, kube: KubeApi, change: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
        self.read = kube.get_virtual_service
        self.update = kube.update_virtual_service
        self.change = change
        self.armed = False
        self.reads = 0
        self.changed = 0
        self.update_errors: list[int] = []

    async def get_virtual_service(self, namespace: str, name: str) -> dict[str, Any] | None:
        live = await self.read(namespace, name)
        self.reads += 1
        if self.armed and live is not None:
            self.armed = False
            await self.change(copy.deepcopy(live))
            self.changed += 1
        return live

    async def update_virtual_service(self, live: dict[str, Any], patch: dict[str, Any]) -> None:
        try:
            await self.update(live, patch)
        except KubeError as error:
            self.update_errors.append(error.status)
            raise


def owned_route(
    route: dict[str, Any], namespace: str, stable: str, candidate: str | None, weight: int
) -> None:
    """Asserts an owned route sends `weight`% to the candidate and the rest to stable, with no mirror."""
    expected = [
        {
            "destination": {"host": service_host(NAME, stable, namespace), "port": {"number": 8080}},
            "weight": 100 - weight,
        }
    ]
    if weight:
        assert candidate is not None
        expected.append(
            {
                "destination": {"host": service_host(NAME, candidate, namespace), "port": {"number": 8080}},
                "weight": weight,
            }
        )
    assert route["route"] == expected, route
    assert "mirror" not in route, route


async def candidate_ready(kube: NamespacedApi, deployment: str, limit: float = 30.0) -> None:
    deadline = time.monotonic() + limit
    while True:
        found = await kube.apps.read_namespaced_deployment_status(deployment, kube.namespace)
        if found.status is not None and (found.status.ready_replicas or 0) >= 1:
            return
        assert time.monotonic() < deadline, f"{deployment} not ready in {limit}s"
        await asyncio.sleep(0.2)


async def test_a_foreign_write_between_read_and_write_is_kept(
    cluster: Cluster,
    kube: NamespacedApi,
    prometheus_url: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    ns, api = kube.namespace, kube.api

    async def write_http(routes: list[dict[str, Any]]) -> None:
        """A separate client's write: it replaces the route list (bumping the resourceVersion)."""
        await custom(api).patch_namespaced_custom_object(
            ISTIO[0], ISTIO[1], ns, ISTIO[2], VS, {"spec": {"http": routes}}, _content_type=MERGE
        )

    async def insert_intruder(live: dict[str, Any]) -> None:
        http = live["spec"]["http"]
        await write_http([http[0], INTRUDER, *http[1:]])

    async def edit_legacy(live: dict[str, Any]) -> None:
        http = live["spec"]["http"]
        for route in http:
            if route["name"] == "legacy":
                route["route"][0]["destination"]["host"] = "legacy-v2.example.svc.cluster.local"
        await write_http(http)

    # A VirtualService someone else made, with routes of their own; no owned routes yet.
    await custom(api).create_namespaced_custom_object(
        ISTIO[0],
        ISTIO[1],
        ns,
        ISTIO[2],
        {
            "apiVersion": f"{ISTIO[0]}/{ISTIO[1]}",
            "kind": "VirtualService",
            "metadata": {"name": VS},
            "spec": {"hosts": [f"{MODEL}.example.svc.cluster.local"], "http": [TEAM_DEBUG, LEGACY]},
        },
    )
    spec = rollout_spec("v1", prometheus_url, virtual_service=VS)
    spec["strategy"] = {"canary": {"steps": [{"weight": 20, "pause": "1h"}, {"weight": 50, "pause": "1h"}]}}
    await create_rollout(api, ns, NAME, spec)

    kube_client = await connect(str(cluster.kubeconfig))
    runtime = Runtime(kube=kube_client, outbound=Outbound(), metrics=OperatorMetrics(), status_refresh=60.0)
    race = Race(kube_client, insert_intruder)
    monkeypatch.setattr(kube_client, "get_virtual_service", race.get_virtual_service)
    monkeypatch.setattr(kube_client, "update_virtual_service", race.update_virtual_service)
    reconciler = Reconciler(runtime)

    async def tick_until(
        check: Callable[[dict[str, Any]], bool], what: str, limit: float = 45.0
    ) -> dict[str, Any]:
        deadline = time.monotonic() + limit
        while True:
            await reconciler.tick(ns, NAME)
            found = await kube_client.get_rollout(ns, NAME)
            assert found is not None
            status = dict(found.get("status") or {})
            if check(status):
                return status
            assert time.monotonic() < deadline, (
                f"{what} not reached: {status.get('phase')} {status.get('message')}"
            )
            await asyncio.sleep(0.3)

    try:
        # The first route write (v1 becomes stable) races with the intruder's write: the race is armed for
        # the tick that writes (every tick reads the VirtualService; the write starts from that read).
        await tick_until(lambda s: s.get("phase") == "Warming", "v1 Warming")
        await candidate_ready(kube, service_host(NAME, "v1", ns).split(".")[0])
        race.armed, race.reads = True, 0
        status = await tick_until(lambda s: s.get("phase") == "Succeeded", "v1 Succeeded")
        assert race.changed == 1
        assert race.update_errors == [409], "the write carried the stale resourceVersion"
        assert race.reads == 2, "after the 409 the operator read the VirtualService again"
        reconciled = condition(status, "Reconciled")
        assert reconciled is not None
        assert reconciled["status"] == "True", reconciled
        vs = await read_virtual_service(api, ns, VS)
        assert vs is not None
        http = vs["spec"]["http"]
        assert [r["name"] for r in http] == ["team-debug", "intruder", "legacy", *OWNED]
        assert http[:3] == [TEAM_DEBUG, INTRUDER, LEGACY], "foreign routes are kept as written, in place"
        for route in http[3:]:
            owned_route(route, ns, "v1", None, 0)
        assert vs["metadata"]["annotations"][CLAIM_ANNOTATION] == NAME
        assert not vs["metadata"].get("ownerReferences"), (
            "a VirtualService the operator did not create is not its"
        )

        # A tick with nothing to change writes nothing.
        version = vs["metadata"]["resourceVersion"]
        await reconciler.tick(ns, NAME)
        vs = await read_virtual_service(api, ns, VS)
        assert vs is not None
        assert vs["metadata"]["resourceVersion"] == version

        # v2 through canary step 1 and step 2; the step change races with an edit of a foreign route.
        await patch_rollout(
            api, ns, NAME, {"spec": {"model": {"version": "v2", "uri": f"s3://models/{MODEL}/v2"}}}
        )
        await tick_until(lambda s: s.get("phase") == "Warming", "v2 Warming")
        await candidate_ready(kube, service_host(NAME, "v2", ns).split(".")[0])
        race.change, race.armed, race.reads, race.update_errors = edit_legacy, True, 0, []
        await reconciler.tick(ns, NAME)  # the candidate is model-ready: this tick enters step 1
        status = status_of(await read_rollout(api, ns, NAME))
        assert (status["phase"], status["step"]) == ("Canary", 1), status.get("message")
        assert status["canaryWeight"] == 20
        assert race.update_errors == [409]
        assert race.reads == 2
        vs = await read_virtual_service(api, ns, VS)
        assert vs is not None
        http = vs["spec"]["http"]
        edited = copy.deepcopy(LEGACY)
        edited["route"][0]["destination"]["host"] = "legacy-v2.example.svc.cluster.local"
        assert [r["name"] for r in http] == ["team-debug", "intruder", "legacy", *OWNED]
        assert http[:3] == [TEAM_DEBUG, INTRUDER, edited]
        for route in http[3:]:
            owned_route(route, ns, "v1", "v2", 20)

        await patch_rollout(
            api, ns, NAME, {"metadata": {"annotations": {"modelrollout.io/promote": "step-2"}}}
        )
        status = await tick_until(lambda s: s.get("step") == 2, "Canary step 2")
        assert (status["phase"], status["canaryWeight"]) == ("Canary", 50)
        vs = await read_virtual_service(api, ns, VS)
        assert vs is not None
        http = vs["spec"]["http"]
        assert http[:3] == [TEAM_DEBUG, INTRUDER, edited]
        assert [r["name"] for r in http[3:]] == OWNED
        for route in http[3:]:
            owned_route(route, ns, "v1", "v2", 50)
    finally:
        await runtime.close()
