"""The traffic generator against in-process model servers on 127.0.0.1 and a VirtualService held in memory."""

from __future__ import annotations

import asyncio
import copy
import ipaddress
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from prometheus_client.parser import text_string_to_metric_families

from modelrollout.api.spec import Slice
from modelrollout.sandbox.trafficgen import (
    DROPPED,
    MIRRORED,
    NO_DESTINATION,
    NO_ENDPOINT,
    NO_ROUTE,
    REFUSED,
    SERVED,
    SliceLoad,
    TrafficGenerator,
    loopback_endpoint,
)
from modelrollout.serving import RequestContext, ServingConfig, create_app
from tests.support.waiting import until

V1 = "recommender-v1.ml.svc.cluster.local"
V2 = "recommender-v2.ml.svc.cluster.local"
HOSTS = {V1: "v1", V2: "v2"}
SLICES = (
    Slice.model_validate({"name": "ios", "match": {"headers": {"x-platform": {"exact": "ios"}}}}),
    Slice.model_validate({"name": "android", "match": {"headers": {"x-platform": {"exact": "android"}}}}),
)
LOADS = [
    SliceLoad("ios", 80, {"x-platform": "ios"}, {"user_id": "u"}),
    SliceLoad("android", 80, {"x-platform": "android"}, {"user_id": "u"}),
    SliceLoad("default", 40, {}, {"user_id": "u"}),
]


class InstantModel:
    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.in_flight = 0
        self.max_in_flight = 0

    async def load(self) -> None:
        return None

    async def warmup(self) -> None:
        return None

    async def predict(self, features: Mapping[str, Any], context: RequestContext) -> float:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.delay)
        finally:
            self.in_flight -= 1
        return 0.5


def _route(
    name: str, platform: str | None, weights: dict[str, int], mirror: float | None = None
) -> dict[str, Any]:
    route: dict[str, Any] = {
        "name": name,
        "route": [{"destination": {"host": host}, "weight": w} for host, w in weights.items() if w > 0],
    }
    if platform is not None:
        route["match"] = [{"headers": {"x-platform": {"exact": platform}}}]
    if mirror is not None:
        route["mirror"] = {"host": V2}
        route["mirrorPercentage"] = {"value": mirror}
    return route


def _virtual_service(*routes: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": "recommender"}, "spec": {"hosts": ["recommender"], "http": list(routes)}}


BASE = _virtual_service(
    _route("modelrollout-ios", "ios", {V1: 100}, mirror=100.0),
    _route("modelrollout-android", "android", {V1: 50, V2: 50}),
    _route("modelrollout-default", None, {V1: 100}),
)


class Holder:
    """A VirtualService provider the test can change under the generator."""

    def __init__(self, value: dict[str, Any] | None) -> None:
        self.value = value
        self.calls = 0
        self.fail = False

    async def __call__(self) -> dict[str, Any] | None:
        self.calls += 1
        if self.fail:
            raise ConnectionError("API server unavailable")
        return copy.deepcopy(self.value)


@pytest.fixture
async def servers() -> AsyncIterator[dict[str, tuple[TestServer, InstantModel]]]:
    out = {}
    for version in ("v1", "v2"):
        model = InstantModel()
        config = ServingConfig(
            model_name="recommender", model_version=version, slices=SLICES, host="127.0.0.1"
        )
        server = TestServer(create_app(model, config), host="127.0.0.1")
        await server.start_server()
        out[version] = (server, model)
    try:
        async with aiohttp.ClientSession() as session:
            for server, _ in out.values():
                await _until_ready(session, f"http://127.0.0.1:{server.port}/ready")
        yield out
    finally:
        for server, _ in out.values():
            await server.close()


async def _until_ready(session: aiohttp.ClientSession, url: str) -> None:
    for _ in range(200):
        async with session.get(url) as response:
            if response.status == 200:
                return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{url} never answered 200")


def _endpoints(servers: Mapping[str, tuple[TestServer, InstantModel]]) -> dict[str, str]:
    return {version: f"127.0.0.1:{server.port}" for version, (server, _) in servers.items()}


def _v2(snapshot: Mapping[Any, int]) -> int:
    return sum(n for key, n in snapshot.items() if key.version == "v2")


async def _server_counts(server: TestServer) -> dict[str, float]:
    """model_requests_total per slice as the server itself counted it."""
    async with aiohttp.ClientSession() as session:
        text = await (await session.get(f"http://127.0.0.1:{server.port}/metrics")).text()
    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "model_requests_total":
                counts[sample.labels["slice"]] = counts.get(sample.labels["slice"], 0) + sample.value
    return counts


async def test_follows_routes_weights_and_mirrors(
    servers: dict[str, tuple[TestServer, InstantModel]],
) -> None:
    generator = TrafficGenerator(
        LOADS,
        Holder(BASE),
        HOSTS,
        _endpoints(servers),
        seed=1,
        arrival="uniform",
        refresh_interval=0.1,
        concurrency=1024,  # routing, not the bound: a loaded machine must not drop requests here
    )
    await generator.start()
    try:
        await until(
            lambda: (
                generator.stats.total(slice="ios", kind=SERVED) > 100
                and generator.stats.total(slice="default") > 40
                and generator.stats.total(slice="android") > 100
            ),
            "enough traffic in every slice",
            within=30.0,  # a bound against a hang; a 2-core machine under a parallel suite needs more than 10 s
        )
    finally:
        # Every request sent gets its answer, however loaded the machine is: this test is about routing.
        await generator.stop(drain=30.0)
    stats = generator.stats
    unanswered = {key: n for key, n in stats.snapshot().items() if key.outcome != "200"}
    assert stats.total() == stats.total(outcome="200"), unanswered
    ios_served = stats.total(slice="ios", kind=SERVED)
    assert ios_served > 100
    # ios: all served by v1; every request mirrored to v2 (100%), whose answers are discarded.
    assert stats.total(slice="ios", version="v2", kind=SERVED) == 0
    assert stats.total(slice="ios", version="v1", kind=SERVED, outcome="200") == ios_served
    assert stats.total(slice="ios", version="v2", kind=MIRRORED, outcome="200") == ios_served
    # android: 50/50 by weight, no mirror.
    android = stats.total(slice="android", kind=SERVED)
    assert stats.total(slice="android", version="v2", kind=SERVED) / android == pytest.approx(0.5, abs=0.12)
    assert stats.total(slice="android", kind=MIRRORED) == 0
    # default: the last route, no match, all v1.
    assert stats.total(slice="default", version="v1", kind=SERVED) == stats.total(slice="default") > 40
    # Everything was answered, and both servers counted what the generator sent them, per slice.
    assert stats.total() == stats.total(outcome="200")
    v1_counts = await _server_counts(servers["v1"][0])
    v2_counts = await _server_counts(servers["v2"][0])
    for slice_name in ("ios", "android", "default"):
        assert v1_counts[slice_name] == stats.total(slice=slice_name, version="v1")
        assert v2_counts[slice_name] == stats.total(slice=slice_name, version="v2")


async def test_picks_up_virtual_service_changes(servers: dict[str, tuple[TestServer, InstantModel]]) -> None:
    holder = Holder(BASE)
    loads = [SliceLoad("android", 100, {"x-platform": "android"})]
    generator = TrafficGenerator(loads, holder, HOSTS, _endpoints(servers), seed=2, refresh_interval=0.05)
    async with generator:
        await until(lambda: generator.stats.total(version="v1") > 0, "traffic to v1")
        holder.value = _virtual_service(_route("modelrollout-android", "android", {V2: 100}))
        calls = holder.calls
        await until(lambda: holder.calls >= calls + 3, "several refreshes after the change")
        before = generator.stats.snapshot()
        await until(lambda: generator.stats.total(version="v2") - _v2(before) > 30, "traffic to v2")
        await until(lambda: holder.calls > 10, "refreshes go on")
        after = generator.stats.snapshot()
    delta = {key: after.get(key, 0) - before.get(key, 0) for key in after}
    assert sum(n for key, n in delta.items() if key.version == "v1") == 0
    assert sum(n for key, n in delta.items() if key.version == "v2") > 30
    assert holder.calls > 10


async def test_records_when_each_version_was_first_and_last_sent_requests(
    servers: dict[str, tuple[TestServer, InstantModel]],
) -> None:
    holder = Holder(_virtual_service(_route("modelrollout-android", "android", {V1: 100})))
    loads = [SliceLoad("android", 100, {"x-platform": "android"})]
    generator = TrafficGenerator(loads, holder, HOSTS, _endpoints(servers), seed=3, refresh_interval=0.05)
    async with generator:
        await until(lambda: generator.stats.total(version="v1") > 0, "traffic to v1")
        holder.value = _virtual_service(_route("modelrollout-android", "android", {V2: 100}))
        switched = time.time()
        await until(lambda: generator.stats.total(version="v2") > 20, "traffic to v2")
    v1 = generator.stats.window(version="v1")
    v2 = generator.stats.window(version="v2", slices=["android"])
    assert v1 is not None
    assert v2 is not None
    assert v1[0] <= v1[1] <= v2[0] <= v2[1]
    assert switched <= v2[0], "v2 was sent requests before its route existed"
    assert generator.stats.window(version="v2", slices=["ios"]) is None
    assert generator.stats.unrouted_at("v1", v1[0]) is not None, (
        "the refresh that dropped v1 was not recorded"
    )


async def test_without_a_virtual_service(servers: dict[str, tuple[TestServer, InstantModel]]) -> None:
    loads = [SliceLoad("ios", 100, {"x-platform": "ios"})]
    generator = TrafficGenerator(loads, Holder(None), HOSTS, _endpoints(servers), refresh_interval=0.1)
    async with generator:
        await until(lambda: generator.stats.total() > 10, "requests without routes")
    assert generator.stats.total() == generator.stats.total(outcome=NO_ROUTE, version="") > 10

    fallback = TrafficGenerator(
        loads, Holder(None), {"recommender": "v1"}, _endpoints(servers), default_host="recommender"
    )
    async with fallback:
        await until(lambda: fallback.stats.total() > 10, "requests to the default host")
    assert fallback.stats.total() == fallback.stats.total(version="v1", outcome="200") > 10


async def test_never_dials_a_non_loopback_endpoint(
    servers: dict[str, tuple[TestServer, InstantModel]],
) -> None:
    loads = [SliceLoad("ios", 100, {"x-platform": "ios"})]
    endpoints = {"v1": "10.0.0.7:8080", "v2": "127.64.0.9"}  # a ClusterIP, and a pod IP without a port
    generator = TrafficGenerator(loads, Holder(BASE), HOSTS, endpoints, request_timeout=0.5)
    async with generator:
        await until(lambda: generator.stats.total() > 10, "requests towards non-loopback endpoints")
    stats = generator.stats
    # A dial attempt would show up as connect-error or timeout; only refusals are counted.
    assert stats.total() == stats.total(outcome=REFUSED) > 10
    assert stats.total(version="v1", kind=SERVED) == stats.total(version="v2", kind=MIRRORED)


async def test_unknown_hosts_and_missing_endpoints(
    servers: dict[str, tuple[TestServer, InstantModel]],
) -> None:
    loads = [
        SliceLoad("ios", 100, {"x-platform": "ios"}),
        SliceLoad("android", 100, {"x-platform": "android"}),
    ]
    endpoints = {"v1": _endpoints(servers)["v1"]}  # v2 is not running
    generator = TrafficGenerator(loads, Holder(BASE), {V1: "v1", V2: "v2"}, endpoints)
    unresolved = TrafficGenerator(loads, Holder(BASE), {V1: "v1"}, endpoints)  # V2 names no known version
    async with generator, unresolved:
        await until(
            lambda: (
                generator.stats.total(version="v2", outcome=NO_ENDPOINT) > 10
                and generator.stats.total(version="v2", kind=MIRRORED, outcome=NO_ENDPOINT) > 5
                and unresolved.stats.total(version="", outcome=NO_DESTINATION) > 10
                and unresolved.stats.total(version="v1", outcome="200") > 10
            ),
            "every kind of unroutable request",
        )
    assert generator.stats.total(version="v2", outcome=NO_ENDPOINT) > 10
    assert generator.stats.total(version="v2", kind=MIRRORED, outcome=NO_ENDPOINT) > 5
    assert unresolved.stats.total(version="", outcome=NO_DESTINATION) > 10
    assert unresolved.stats.total(version="v1", outcome="200") > 10


async def test_refresh_failures_keep_the_last_routes(
    servers: dict[str, tuple[TestServer, InstantModel]],
) -> None:
    holder = Holder(BASE)
    loads = [SliceLoad("default", 100, {})]
    generator = TrafficGenerator(loads, holder, HOSTS, _endpoints(servers), refresh_interval=0.05)
    async with generator:
        await until(lambda: generator.table is not None, "a first route table")
        holder.fail = True
        await until(lambda: generator.refresh_errors >= 3, "failing refreshes")
    assert generator.refresh_errors >= 3
    assert generator.table is not None
    assert generator.stats.total() == generator.stats.total(version="v1", outcome="200")


async def test_bounded_concurrency_drops_and_stops_cleanly() -> None:
    model = InstantModel(delay=5.0)
    config = ServingConfig(model_name="recommender", model_version="v1", host="127.0.0.1")
    server = TestServer(create_app(model, config), host="127.0.0.1")
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as session:
            await _until_ready(session, f"http://127.0.0.1:{server.port}/ready")
        loads = [SliceLoad("default", 200, {})]
        vs = _virtual_service(_route("all", None, {V1: 100}))
        generator = TrafficGenerator(
            loads, Holder(vs), HOSTS, {"v1": f"127.0.0.1:{server.port}"}, concurrency=3, request_timeout=30
        )
        await generator.start()
        await until(lambda: generator.stats.total(outcome=DROPPED) > 50, "requests dropped at the bound")
        started = asyncio.get_running_loop().time()
        await generator.stop(drain=0.2)
        assert asyncio.get_running_loop().time() - started < 2.0  # it did not wait for the 5 s answers
    finally:
        await server.close()
    stats = generator.stats
    assert model.max_in_flight <= 3
    assert stats.total(outcome=DROPPED) > 50
    assert stats.total(outcome="cancelled") == 3
    assert not generator._inflight


def _rule(
    name: str,
    headers: dict[str, str] | None,
    backends: dict[str, int],
    slice_name: str,
    mirror: int | None = None,
) -> dict[str, Any]:
    filters: list[dict[str, Any]] = [
        {
            "type": "RequestHeaderModifier",
            "requestHeaderModifier": {"set": [{"name": "x-modelrollout-slice", "value": slice_name}]},
        }
    ]
    if mirror is not None:
        backend = {"group": "", "kind": "Service", "name": "recommender-v2", "port": 8080}
        filters.append({"type": "RequestMirror", "requestMirror": {"backendRef": backend, "percent": mirror}})
    rule: dict[str, Any] = {
        "name": name,
        "filters": filters,
        "backendRefs": [{"name": b, "port": 8080, "weight": w} for b, w in backends.items()],
    }
    if headers is not None:
        rule["matches"] = [{"headers": [{"name": k, "value": v} for k, v in headers.items()]}]
    return rule


async def test_follows_an_http_route_by_gateway_api_precedence(
    servers: dict[str, tuple[TestServer, InstantModel]],
) -> None:
    """The second rule has more header matches, so it takes android requests that carry x-beta although the
    first rule also matches them (Istio would take the first); its slice header reaches the model server."""
    http_route = {
        "kind": "HTTPRoute",
        "metadata": {"name": "recommender"},
        "spec": {
            "rules": [
                _rule("modelrollout-android", {"x-platform": "android"}, {"recommender-v1": 1}, "android"),
                _rule(
                    "modelrollout-beta",
                    {"x-platform": "android", "x-beta": "1"},
                    {"recommender-v2": 1},
                    "ios",  # any slice name the servers know: the label must come from this rule
                    mirror=100,
                ),
                _rule("modelrollout-default", None, {"recommender-v1": 3, "recommender-v2": 1}, "default"),
            ]
        },
    }
    loads = [
        SliceLoad("beta", 60, {"x-platform": "android", "x-beta": "1"}, {"user_id": "u"}),
        SliceLoad("android", 60, {"x-platform": "android"}, {"user_id": "u"}),
        SliceLoad("default", 120, {}, {"user_id": "u"}),
    ]
    hosts = {"recommender-v1": "v1", "recommender-v2": "v2"}
    generator = TrafficGenerator(
        loads,
        Holder(http_route),
        hosts,
        _endpoints(servers),
        seed=2,
        arrival="uniform",
        refresh_interval=0.1,
        concurrency=1024,
    )
    await generator.start()
    try:
        await until(
            lambda: (
                all(generator.stats.total(slice=s, kind=SERVED) > 60 for s in ("beta", "android"))
                and generator.stats.total(slice="default", kind=SERVED) > 300  # enough for a 25% share
            ),
            "enough traffic in every slice",
            within=30.0,  # a bound against a hang; a 2-core machine under a parallel suite needs more than 10 s
        )
    finally:
        await generator.stop(drain=30.0)
    stats = generator.stats
    unanswered = {key: n for key, n in stats.snapshot().items() if key.outcome != "200"}
    assert stats.total() == stats.total(outcome="200"), unanswered
    assert stats.total(slice="beta", version="v1", kind=SERVED) == 0, "the earlier, less specific rule won"
    assert stats.total(slice="beta", version="v2", kind=MIRRORED) == stats.total(slice="beta", kind=SERVED)
    assert stats.total(slice="android", version="v2") == 0
    default = stats.total(slice="default", kind=SERVED)
    v2_default = stats.total(slice="default", version="v2", kind=SERVED)
    assert v2_default / default == pytest.approx(0.25, abs=0.12), (v2_default, default)
    # The servers labelled each request with the slice its rule set, not with their own classification.
    v2_counts = await _server_counts(servers["v2"][0])
    assert v2_counts["ios"] == stats.total(slice="beta", version="v2")


def test_only_loopback_or_the_named_pod_networks_are_dialled() -> None:
    pods = [ipaddress.ip_network("10.214.1.0/24")]
    assert loopback_endpoint("127.0.0.1:8080")
    assert not loopback_endpoint("10.214.1.7:8080"), "a pod IP is dialled only when its network is named"
    assert loopback_endpoint("10.214.1.7:8080", pods)
    assert not loopback_endpoint("10.214.2.7:8080", pods)
    assert not loopback_endpoint("10.0.0.1:443", pods), "never a Service IP"
    assert not loopback_endpoint("10.214.1.7", pods), "an address without a port"
