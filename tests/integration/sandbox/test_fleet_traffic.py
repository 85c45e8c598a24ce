"""The simulated fleet as real processes scraped by the sandbox's Prometheus, and the traffic generator
following a real Istio VirtualService stored in the API server."""

from __future__ import annotations

import asyncio
import json
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from kubernetes.aio.client.exceptions import ApiException

from modelrollout.api.spec import Slice
from modelrollout.identity import ISTIO_GROUP, ISTIO_VERSION, VIRTUAL_SERVICES
from modelrollout.sandbox.fleet import Fleet
from modelrollout.sandbox.processes import Process
from modelrollout.sandbox.scenario import VersionBehaviour, load_scenario
from modelrollout.sandbox.trafficgen import MIRRORED, SERVED, SliceLoad, TrafficGenerator, TrafficStats
from tests.conftest import Cluster, NamespacedApi

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
GROUP, VERSION, PLURAL = ISTIO_GROUP, ISTIO_VERSION, VIRTUAL_SERVICES
SLICES = [
    Slice.model_validate({"name": "ios", "match": {"headers": {"x-platform": {"exact": "ios"}}}}),
    Slice.model_validate({"name": "android", "match": {"headers": {"x-platform": {"exact": "android"}}}}),
]
FAST = VersionBehaviour.model_validate({"default": {"latency": {"p50": "2ms", "p99": "6ms"}}})


def _host(version: str, namespace: str) -> str:
    return f"recommender-{version}.{namespace}.svc.cluster.local"


def _destination(version: str, namespace: str, weight: int) -> dict[str, Any]:
    return {"destination": {"host": _host(version, namespace), "port": {"number": 8080}}, "weight": weight}


def _virtual_service(namespace: str, mirror_ios: bool = False) -> dict[str, Any]:
    ios: dict[str, Any] = {
        "name": "modelrollout-ios",
        "match": [{"headers": {"x-platform": {"exact": "ios"}}}],
        "route": [_destination("v1", namespace, 100)],
    }
    if mirror_ios:
        ios["mirror"] = {"host": _host("v2", namespace), "port": {"number": 8080}}
        ios["mirrorPercentage"] = {"value": 100.0}
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "VirtualService",
        "metadata": {"name": "recommender", "namespace": namespace},
        "spec": {
            "hosts": [f"recommender.{namespace}.svc.cluster.local"],
            "http": [
                ios,
                {
                    "name": "modelrollout-android",
                    "match": [{"headers": {"x-platform": {"exact": "android"}}}],
                    "route": [_destination("v1", namespace, 50), _destination("v2", namespace, 50)],
                },
                {"name": "modelrollout-default", "route": [_destination("v1", namespace, 100)]},
            ],
        },
    }


async def _prometheus(prometheus: str, expr: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(timeout=5.0) as client:
        response = await client.get(f"{prometheus}/api/v1/query", params={"query": expr})
    response.raise_for_status()
    result: list[dict[str, Any]] = response.json()["data"]["result"]
    return result


async def _counts(prometheus: str, model: str) -> dict[tuple[str, str], float]:
    """Requests per (slice, version) as Prometheus scraped them from the fleet."""
    result = await _prometheus(
        prometheus, f'sum by (slice, version) (model_requests_total{{model="{model}"}})'
    )
    return {(r["metric"]["slice"], r["metric"]["version"]): float(r["value"][1]) for r in result}


def _answered(stats: TrafficStats) -> dict[tuple[str, str], float]:
    """Requests per (slice, version) that a fleet server answered, as the generator counted them."""
    out: dict[tuple[str, str], float] = {}
    for key, count in stats.snapshot().items():
        if key.outcome.isdigit():
            out[(key.slice, key.version)] = out.get((key.slice, key.version), 0) + count
    return out


async def _prometheus_agrees(
    prometheus: str,
    model: str,
    expected: dict[tuple[str, str], float],
    baseline: dict[tuple[str, str], float],
) -> dict[tuple[str, str], float]:
    """Waits until Prometheus's counts, minus the baseline, equal the expected ones (scrapes lag a little)."""
    delta: dict[tuple[str, str], float] = {}
    deadline = asyncio.get_running_loop().time() + 30
    while asyncio.get_running_loop().time() < deadline:
        counts = await _counts(prometheus, model)
        delta = {k: v - baseline.get(k, 0) for k, v in counts.items() if v - baseline.get(k, 0)}
        if delta == expected:
            break
        await asyncio.sleep(0.5)
    return delta


@pytest.fixture
def fleet(cluster: Cluster) -> Iterator[Fleet]:
    # A model name of its own keeps this test's series apart in the session's shared Prometheus.
    model = f"recommender-{secrets.token_hex(3)}"
    fleet = Fleet(cluster.require_sandbox(), model, SLICES, {"v1": FAST, "v2": FAST}, seed=5)
    try:
        yield fleet
    finally:
        members = [m.process for v in ("v1", "v2") if (m := fleet.member(v)) is not None]
        fleet.stop_all()
        assert not [p.pid for p in members if p.alive()], "fleet servers outlived stop_all()"


@pytest.fixture
async def virtual_service(kube: NamespacedApi) -> dict[str, Any]:
    body = _virtual_service(kube.namespace)
    await kube.custom.create_namespaced_custom_object(GROUP, VERSION, kube.namespace, PLURAL, body)
    return body


def _provider(kube: NamespacedApi) -> Any:
    async def read() -> dict[str, Any] | None:
        try:
            found = await kube.custom.get_namespaced_custom_object(
                GROUP, VERSION, kube.namespace, PLURAL, "recommender"
            )
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        return found if isinstance(found, dict) else None

    return read


async def test_traffic_follows_the_live_virtual_service_into_prometheus(
    kube: NamespacedApi, fleet: Fleet, prometheus_url: str, virtual_service: dict[str, Any]
) -> None:
    namespace = kube.namespace
    await asyncio.gather(fleet.astart("v1"), fleet.astart("v2"))
    await asyncio.to_thread(fleet.wait_model_ready, "v1", 20)
    await asyncio.to_thread(fleet.wait_model_ready, "v2", 20)
    hosts = {_host("v1", namespace): "v1", _host("v2", namespace): "v2"}
    loads = [
        SliceLoad("ios", 40, {"x-platform": "ios"}, {"user_id": "u"}),
        SliceLoad("android", 40, {"x-platform": "android"}, {"user_id": "u"}),
        SliceLoad("default", 20, {}, {"user_id": "u"}),
    ]

    # 1. Weights: ios all to v1, android 50/50, default all to v1.
    weights = TrafficGenerator(loads, _provider(kube), hosts, fleet.endpoint, seed=11, refresh_interval=0.25)
    async with weights:
        await asyncio.sleep(6)
    stats = weights.stats
    assert stats.total(kind=MIRRORED) == 0
    assert stats.total() == stats.total(outcome="200")
    answered = _answered(stats)
    scraped = await _prometheus_agrees(prometheus_url, fleet.model, answered, {})
    assert scraped == answered  # Prometheus saw exactly what the generator sent, per slice and version
    assert ("ios", "v2") not in scraped  # the candidate never got an ios request
    assert ("default", "v2") not in scraped
    assert scraped[("ios", "v1")] > 150
    android = scraped[("android", "v1")] + scraped[("android", "v2")]
    assert 0.35 < scraped[("android", "v2")] / android < 0.65

    # 2. Mirror: ios mirrored to v2 from the moment the VirtualService changes; v2 serves no ios user.
    baseline = await _counts(prometheus_url, fleet.model)
    shadow = TrafficGenerator(loads, _provider(kube), hosts, fleet.endpoint, seed=12, refresh_interval=0.25)
    async with shadow:
        await asyncio.sleep(1.5)
        current = await kube.custom.get_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, "recommender"
        )
        assert isinstance(current, dict)
        current["spec"] = _virtual_service(namespace, mirror_ios=True)["spec"]
        await kube.custom.replace_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, "recommender", current
        )
        await asyncio.sleep(4.5)
    stats = shadow.stats
    mirrored = stats.total(slice="ios", version="v2", kind=MIRRORED, outcome="200")
    ios_served = stats.total(slice="ios", kind=SERVED)
    assert stats.total(slice="ios", version="v2", kind=SERVED) == 0
    assert mirrored > 100
    assert mirrored < ios_served  # requests before the change were not mirrored
    assert stats.total(slice="android", kind=MIRRORED) == 0
    delta = await _prometheus_agrees(prometheus_url, fleet.model, _answered(stats), baseline)
    assert delta[("ios", "v2")] == mirrored  # every request v2 saw in slice ios was a mirrored copy
    assert delta[("ios", "v1")] == ios_served


def test_fleet_starts_versions_on_demand_and_reports_ready_after_loading(
    cluster: Cluster, prometheus_url: str
) -> None:
    sandbox = cluster.require_sandbox()
    slow = VersionBehaviour.model_validate(
        {"loadTime": "2s", "default": {"latency": {"p50": "1ms", "p99": "2ms"}}}
    )
    model = f"ondemand-{secrets.token_hex(3)}"
    with Fleet(sandbox, model, SLICES, {"v1": FAST, "v2": slow}) as fleet:
        fleet.start("v1")
        assert list(fleet.endpoints) == ["v1"]
        assert fleet.endpoint("v2") is None

        started = time.monotonic()
        endpoint = fleet.start("v2", uri="s3://models/v2")
        assert fleet.start("v2") == endpoint  # starting a running version is a no-op
        assert endpoint.startswith("127.0.0.1:")
        assert httpx.get(f"http://{endpoint}/live").status_code == 200
        ready = httpx.get(f"http://{endpoint}/ready")
        assert ready.status_code == 503
        assert ready.json()["state"] == "loading"
        fleet.wait_model_ready("v2", timeout=20)
        assert time.monotonic() - started >= 1.9
        assert fleet.model_ready("v2")

        # It serves with the operator's slice definitions (MODELROLLOUT_SLICES) and its identity.
        answer = httpx.post(f"http://{endpoint}/predict", json={}, headers={"X-Platform": "android"}).json()
        assert (answer["slice"], answer["version"], answer["model"]) == ("android", "v2", model)
        target = sandbox.targets_dir / f"fleet-default-{model}-v2.json"
        assert json.loads(target.read_text())[0]["targets"] == [endpoint]
        log = sandbox.logs / f"fleet-default-{model}-v2.log"
        assert "loading" in log.read_text()

        deadline = time.monotonic() + 20
        up: list[dict[str, Any]] = []
        while time.monotonic() < deadline and not up:
            response = httpx.get(
                f"{prometheus_url}/api/v1/query", params={"query": f'up{{instance="{endpoint}"}} == 1'}
            )
            up = response.json()["data"]["result"]
            time.sleep(0.5)
        assert up, "Prometheus never scraped the v2 server"

        member = fleet.member("v2")
        assert member is not None
        fleet.stop("v2")
        assert not member.process.alive()
        assert not target.exists()
        assert fleet.endpoint("v2") is None
        assert list(fleet.endpoints) == ["v1"]
        v1 = fleet.member("v1")
        assert v1 is not None
    assert not v1.process.alive()  # leaving the context stops everything


CHILD = """
import json
import os
import sys
from pathlib import Path
from modelrollout.sandbox.fleet import Fleet
from modelrollout.sandbox.scenario import VersionBehaviour
from modelrollout.identity import ISTIO_GROUP, ISTIO_VERSION, VIRTUAL_SERVICES

class Targets:
    logs = Path(sys.argv[1])
    def add_scrape_target(self, name, address, labels=None): pass
    def remove_scrape_target(self, name): pass

fleet = Fleet(Targets(), "orphan-check", [], {"v1": VersionBehaviour()})
fleet.start("v1")
member = fleet.member("v1")
print(json.dumps({"pid": member.process.pid, "started": member.process.started}), flush=True)
os._exit(0)  # no cleanup at all, as if the demo crashed
"""


def test_fleet_servers_exit_when_their_parent_dies(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path)], capture_output=True, text=True, timeout=60, check=True
    )
    started = json.loads(result.stdout.strip().splitlines()[-1])
    server = Process(
        "fleet-v1", started["pid"], tmp_path / "fleet-default-orphan-check-v1.log", started["started"]
    )
    deadline = time.monotonic() + 10
    while server.alive() and time.monotonic() < deadline:
        time.sleep(0.2)
    alive = server.alive()
    if alive:  # do not leave it behind even when the test fails
        server.stop()
    assert not alive, "the fleet server outlived the process that started it"
    assert "parent process" in (tmp_path / "fleet-default-orphan-check-v1.log").read_text()


def test_scenario_manifests_are_accepted_by_the_real_crd(cluster: Cluster, namespace: str) -> None:
    scenario = load_scenario(REPO / "examples" / "scenarios" / "healthy.yaml")
    prometheus = cluster.prometheus or "http://127.0.0.1:9090"
    for manifest in (
        scenario.manifest(namespace, prometheus),
        scenario.updated_manifest(namespace, prometheus),
    ):
        result = cluster.kubectl(
            "apply", "--dry-run=server", "-o", "json", "-f", "-", stdin=yaml.safe_dump(manifest)
        )
        applied = json.loads(result.stdout)
        assert applied["metadata"]["namespace"] == namespace
        assert applied["spec"]["model"]["version"] == manifest["spec"]["model"]["version"]
