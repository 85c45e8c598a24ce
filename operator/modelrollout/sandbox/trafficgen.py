"""User traffic for the sandbox that goes where the live Istio VirtualService or Gateway API HTTPRoute says.

There is no Envoy in the sandbox, so the generator plays its part. Under a VirtualService, for every request
of a slice it takes the first HTTP route whose match accepts the slice's headers (a route without match
accepts everything), picks a destination by the route's integer weights, and, when the route mirrors, sends a
copy to the mirror destination with the route's probability and discards the answer, as Istio does. Under an
HTTPRoute it follows Gateway API's rules instead (`httproute`: precedence by match specificity, not order;
filters in order; weighted backendRefs). It re-reads the object every `refresh_interval`, so weight and
mirror changes by the operator take effect within it.

Destination hosts (Service FQDNs) map to model versions through a resolver, and versions to the simulated
fleet's endpoints. Only loopback endpoints are ever dialled: pod and Service IPs in the sandbox are fake.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

import aiohttp

from modelrollout.sandbox.httproute import HTTPRouteTable
from modelrollout.sandbox.routing import Decision, Router
from modelrollout.serving.slices import lowercase_headers, value_matches

__all__ = ["Decision", "RoutingTable", "SliceLoad", "TrafficGenerator", "TrafficStats", "routing_table"]

log = logging.getLogger(__name__)

RoutesProvider = Callable[[], Awaitable[Mapping[str, Any] | None]]
"""Returns the live VirtualService or HTTPRoute (None when it does not exist)."""
VirtualServiceProvider = RoutesProvider
HostResolver = Mapping[str, str] | Callable[[str], Awaitable[str | None]]
"""Destination host (e.g. recommender-v2.ns.svc.cluster.local) -> model version."""
EndpointLookup = Mapping[str, str] | Callable[[str], str | None]
"""Model version -> '127.0.0.1:port' of the fleet server serving it."""

SERVED = "served"
MIRRORED = "mirrored"
# Outcomes besides the HTTP status code of an answered request.
NO_ROUTE = "no-route"  # no route matched (Istio answers 404)
NO_DESTINATION = "no-destination"  # the destination host is not a known version (Istio answers 503)
NO_ENDPOINT = "no-endpoint"  # the version has no running fleet server
REFUSED = "refused-non-loopback"  # the endpoint is not a loopback address: never dialled
DROPPED = "dropped"  # too many requests in flight
CONNECT_ERROR = "connect-error"
TIMEOUT = "timeout"
CANCELLED = "cancelled"  # still in flight when the generator stopped
NO_VERSION = ""


@dataclass(frozen=True)
class SliceLoad:
    """Requests of one slice: rate, headers that put them in the slice, and the JSON body."""

    name: str
    rate: float
    headers: Mapping[str, str] = field(default_factory=dict)
    body: Mapping[str, Any] = field(default_factory=dict)


class TrafficKey(NamedTuple):
    slice: str
    version: str
    kind: str  # served | mirrored
    outcome: str  # HTTP status ("200", "500", ...) or one of the outcomes above


class TrafficStats:
    """What the generator did, counted per (slice, version, kind, outcome), and when each (slice, version,
    kind) was first and last sent a request (wall-clock seconds)."""

    def __init__(self) -> None:
        self.counts: Counter[TrafficKey] = Counter()
        self.sent: dict[tuple[str, str, str], tuple[float, float]] = {}
        self.routed: list[tuple[float, frozenset[str]]] = []
        """(wall-clock time, versions the routes name) each time a refresh changed that set."""

    def routes_read(self, versions: frozenset[str]) -> None:
        """A refresh found routes naming these versions (recorded when the set changes)."""
        if not self.routed or self.routed[-1][1] != versions:
            self.routed.append((time.time(), versions))

    def unrouted_at(self, version: str, after: float) -> float | None:
        """When the generator first read routes naming no `version` after `after` (None: never)."""
        return next((at for at, names in self.routed if at > after and version not in names), None)

    def dispatched(self, slice_name: str, version: str, kind: str) -> None:
        """A request of the slice leaves for the version now."""
        key = (slice_name, version, kind)
        now = time.time()
        first, _ = self.sent.get(key, (now, now))
        self.sent[key] = (first, now)

    def window(
        self, *, version: str, kind: str = SERVED, slices: Sequence[str] | None = None
    ) -> tuple[float, float] | None:
        """(first, last) wall-clock time a request went to `version` as `kind` (from `slices`, when given)."""
        spans = [
            span
            for (slice_name, sent_version, sent_kind), span in self.sent.items()
            if sent_version == version and sent_kind == kind and (slices is None or slice_name in slices)
        ]
        if not spans:
            return None
        return min(first for first, _ in spans), max(last for _, last in spans)

    def add(self, slice_name: str, version: str, kind: str, outcome: str) -> None:
        self.counts[TrafficKey(slice_name, version, kind, outcome)] += 1

    def total(
        self,
        *,
        slice: str | None = None,
        version: str | None = None,
        kind: str | None = None,
        outcome: str | None = None,
    ) -> int:
        """Requests matching every given field."""
        wanted = {"slice": slice, "version": version, "kind": kind, "outcome": outcome}
        return sum(
            count
            for key, count in self.counts.items()
            if all(value is None or getattr(key, name) == value for name, value in wanted.items())
        )

    def snapshot(self) -> dict[TrafficKey, int]:
        return dict(self.counts)


# Routing -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Route:
    """One HTTP route of a VirtualService, reduced to what routing a request needs."""

    name: str
    matches: tuple[Mapping[str, Any], ...]
    destinations: tuple[tuple[str, int], ...]
    mirrors: tuple[tuple[str, float], ...]
    headers: Mapping[str, str] = field(default_factory=dict)


# Match fields the generator evaluates; a clause with any other field (sourceLabels, queryParams, ...) cannot
# be decided for a synthetic request and is taken as not matching.
_EVALUATED = frozenset({"name", "headers", "withoutHeaders", "uri", "method", "ignoreUriCase"})


def _host(destination: Any) -> str | None:
    if isinstance(destination, Mapping) and isinstance(destination.get("host"), str):
        return str(destination["host"])
    return None


def _percent(value: Any, default: float = 100.0) -> float:
    if isinstance(value, Mapping):
        value = value.get("value")
    if isinstance(value, int | float) and not isinstance(value, bool):
        return max(0.0, min(100.0, float(value)))
    return default


def _route_from(index: int, http: Mapping[str, Any]) -> Route:
    destinations = []
    for entry in http.get("route") or []:
        host = _host(entry.get("destination")) if isinstance(entry, Mapping) else None
        if host is not None:
            weight = entry.get("weight")
            destinations.append((host, int(weight) if isinstance(weight, int) and weight > 0 else 0))
    mirrors = []
    mirror_host = _host(http.get("mirror"))
    if mirror_host is not None:
        # mirrorPercentage wins over the deprecated mirrorPercent; neither set means 100% (Istio's default).
        legacy = _percent(http.get("mirrorPercent", http.get("mirror_percent")))
        mirrors.append((mirror_host, _percent(http.get("mirrorPercentage"), legacy)))
    for entry in http.get("mirrors") or []:
        host = _host(entry.get("destination")) if isinstance(entry, Mapping) else None
        if host is not None:
            mirrors.append((host, _percent(entry.get("percentage"))))
    matches = tuple(m for m in (http.get("match") or []) if isinstance(m, Mapping))
    for clause in matches:
        unknown = set(clause) - _EVALUATED
        if unknown:
            log.warning(
                "route %s: match fields %s are not evaluated; the clause never matches", index, unknown
            )
    name = http.get("name")
    return Route(
        name=name if isinstance(name, str) and name else f"#{index}",
        matches=matches,
        destinations=tuple(destinations),
        mirrors=tuple(mirrors),
        headers=_request_headers(http.get("headers")),
    )


def _request_headers(operations: Any) -> dict[str, str]:
    request = operations.get("request") if isinstance(operations, Mapping) else None
    if not isinstance(request, Mapping):
        return {}
    found: dict[str, str] = {}
    for kind in ("add", "set"):  # set wins over add for the same header
        for name, value in (request.get(kind) or {}).items():
            if isinstance(name, str) and isinstance(value, str):
                found[name.lower()] = value
    return found


def _clause_matches(clause: Mapping[str, Any], headers: Mapping[str, str], method: str, path: str) -> bool:
    if set(clause) - _EVALUATED:
        return False
    for name, match in (clause.get("headers") or {}).items():
        if not value_matches(match or {}, headers.get(name.lower())):
            return False
    for name, match in (clause.get("withoutHeaders") or {}).items():
        if value_matches(match or {}, headers.get(name.lower())):
            return False
    if "uri" in clause:
        uri = dict(clause["uri"] or {})
        target = path
        if clause.get("ignoreUriCase"):
            target = path.lower()
            uri = {
                k: v.lower() if k in ("exact", "prefix") and isinstance(v, str) else v for k, v in uri.items()
            }
        if not value_matches(uri, target):
            return False
    return "method" not in clause or value_matches(clause["method"] or {}, method)


class RoutingTable:
    """The HTTP routes of one VirtualService, in order."""

    def __init__(self, routes: Sequence[Route]) -> None:
        self.routes = list(routes)

    @classmethod
    def from_virtual_service(cls, virtual_service: Mapping[str, Any]) -> RoutingTable:
        spec = virtual_service.get("spec") or {}
        http = (spec.get("http") or []) if isinstance(spec, Mapping) else []
        return cls([_route_from(i, route) for i, route in enumerate(http) if isinstance(route, Mapping)])

    @property
    def hosts(self) -> frozenset[str]:
        """Every destination and mirror host named by a route."""
        found = {host for route in self.routes for host, _ in (*route.destinations, *route.mirrors)}
        return frozenset(found)

    def route(
        self, headers: Mapping[str, str], rng: random.Random, *, method: str = "POST", path: str = "/predict"
    ) -> Decision:
        """The first matching route's destination by weight, and the mirrors drawn by their percentage."""
        lowered = lowercase_headers(headers)
        for route in self.routes:
            if route.matches and not any(_clause_matches(c, lowered, method, path) for c in route.matches):
                continue
            destination = _pick(route.destinations, rng)
            mirrors = tuple(host for host, percent in route.mirrors if rng.random() * 100.0 < percent)
            return Decision(route=route.name, destination=destination, mirrors=mirrors, headers=route.headers)
        return Decision(route=None, destination=None)


def routing_table(routes: Mapping[str, Any]) -> Router:
    """The routing table of a live object: Gateway API's rules for an HTTPRoute, Istio's for anything else."""
    if routes.get("kind") == "HTTPRoute":
        return HTTPRouteTable.from_http_route(routes)
    return RoutingTable.from_virtual_service(routes)


def _pick(destinations: Sequence[tuple[str, int]], rng: random.Random) -> str | None:
    if not destinations:
        return None
    if len(destinations) == 1:  # a lone destination takes all traffic, whatever its weight says
        return destinations[0][0]
    total = sum(weight for _, weight in destinations)
    if total <= 0:
        return destinations[0][0]
    draw = rng.random() * total
    for host, weight in destinations:
        draw -= weight
        if draw < 0:
            return host
    return destinations[-1][0]


def loopback_endpoint(
    endpoint: str, networks: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network] = ()
) -> bool:
    """Whether 'host:port' names a loopback IP address (the only kind the generator dials), or one in
    `networks` (the real node's pod network, inside the sandbox's own network namespace)."""
    host, _, port = endpoint.rpartition(":")
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return port.isdigit() and (address.is_loopback or any(address in network for network in networks))


# The generator -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Snapshot:
    table: Router | None
    versions: Mapping[str, str | None]


class TrafficGenerator:
    """Sends each slice's requests at its rate through the live VirtualService to the fleet's endpoints."""

    def __init__(
        self,
        loads: Sequence[SliceLoad],
        routes: RoutesProvider,
        resolve_host: HostResolver,
        endpoints: EndpointLookup,
        *,
        seed: int = 0,
        arrival: Literal["poisson", "uniform"] = "poisson",
        refresh_interval: float = 0.25,
        concurrency: int = 64,
        request_timeout: float = 10.0,
        default_host: str | None = None,
        path: str = "/predict",
        networks: Sequence[str] = (),
    ) -> None:
        """`routes` returns the live VirtualService or HTTPRoute. `default_host`: where requests go while it
        does not exist (as to a plain Service);
        without it such requests are counted as no-route."""
        self.loads = [load for load in loads if load.rate > 0]
        self._provider = routes
        self._resolve = _as_resolver(resolve_host)
        self._endpoint = _as_lookup(endpoints)
        self.networks = [ipaddress.ip_network(n) for n in networks]
        self.seed = seed
        self.arrival = arrival
        self.refresh_interval = refresh_interval
        self.concurrency = concurrency
        self.request_timeout = request_timeout
        self.default_host = default_host
        self.path = path
        self.stats = TrafficStats()
        self.refresh_errors = 0
        self.refreshes = 0
        self._snapshot = _Snapshot(None, {})
        self._session: aiohttp.ClientSession | None = None
        self._loops: list[asyncio.Task[None]] = []
        self._inflight: set[asyncio.Task[None]] = set()
        self._refused_logged = False

    @property
    def table(self) -> Router | None:
        """The routes in use (None while no routing object was read)."""
        return self._snapshot.table

    @property
    def versions(self) -> Mapping[str, str | None]:
        """Destination host -> version, as last resolved."""
        return self._snapshot.versions

    async def refresh(self) -> None:
        """Reads the routing object and resolves its hosts now; keeps the previous state when either fails."""
        live = await self._provider()
        table = routing_table(live) if live is not None else None
        hosts = set(table.hosts if table is not None else ())
        if self.default_host is not None:
            hosts.add(self.default_host)
        previous = self._snapshot.versions
        versions: dict[str, str | None] = {}
        for host in sorted(hosts):
            try:
                versions[host] = await self._resolve(host)
            except Exception as error:
                log.warning("cannot resolve %s (%s); keeping %r", host, error, previous.get(host))
                versions[host] = previous.get(host)
        self._snapshot = _Snapshot(table, versions)
        named = {versions.get(host) for host in (table.hosts if table is not None else ())}
        self.stats.routes_read(frozenset(v for v in named if v is not None))
        self.refreshes += 1

    async def start(self) -> None:
        if self._session is not None:
            raise RuntimeError("the traffic generator is already running")
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self.concurrency),
            timeout=aiohttp.ClientTimeout(total=self.request_timeout),
        )
        try:
            await self.refresh()
        except Exception as error:
            self.refresh_errors += 1
            log.warning("first read of the routes failed: %s", error)
        self._loops = [asyncio.create_task(self._refresher(), name="trafficgen-refresh")]
        self._loops += [
            asyncio.create_task(self._drive(load), name=f"trafficgen-{load.name}") for load in self.loads
        ]

    async def stop(self, drain: float = 2.0) -> None:
        """Stops sending, waits up to `drain` seconds for requests in flight, cancels the rest."""
        for task in self._loops:
            task.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        self._loops = []
        if self._inflight:
            await asyncio.wait(set(self._inflight), timeout=drain)
        for task in list(self._inflight):
            task.cancel()
        await asyncio.gather(*self._inflight, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> TrafficGenerator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # Internals ---------------------------------------------------------------------------------------
    async def _refresher(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_interval)
            try:
                await self.refresh()
            except Exception as error:
                self.refresh_errors += 1
                if self.refresh_errors == 1 or self.refresh_errors % 40 == 0:
                    log.warning("reading the routes failed (%d so far): %s", self.refresh_errors, error)

    async def _drive(self, load: SliceLoad) -> None:
        rng = random.Random(f"{self.seed}:{load.name}")
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            next_at += rng.expovariate(load.rate) if self.arrival == "poisson" else 1.0 / load.rate
            delay = next_at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -1.0:
                next_at = loop.time()  # the loop stalled: resume the rate instead of bursting to catch up
            self._dispatch(load, rng)

    def _dispatch(self, load: SliceLoad, rng: random.Random) -> None:
        snapshot = self._snapshot
        if snapshot.table is None:
            if self.default_host is None:
                self.stats.add(load.name, NO_VERSION, SERVED, NO_ROUTE)
                return
            decision = Decision(route=None, destination=self.default_host)
        else:
            decision = snapshot.table.route(load.headers, rng, path=self.path)
            if decision.route is None:
                self.stats.add(load.name, NO_VERSION, SERVED, NO_ROUTE)
                return
        served = _headers_after(load.headers, decision.headers, decision.removed)
        self._launch(load, decision.destination, SERVED, snapshot, served)
        for index, host in enumerate(decision.mirrors):
            copied = decision.mirror_headers[index] if index < len(decision.mirror_headers) else served
            self._launch(load, host, MIRRORED, snapshot, copied)

    def _launch(
        self,
        load: SliceLoad,
        host: str | None,
        kind: str,
        snapshot: _Snapshot,
        headers: Mapping[str, str],
    ) -> None:
        version = snapshot.versions.get(host) if host is not None else None
        if version is None:
            self.stats.add(load.name, NO_VERSION, kind, NO_DESTINATION)
            return
        endpoint = self._endpoint(version)
        if endpoint is None:
            self.stats.add(load.name, version, kind, NO_ENDPOINT)
            return
        if not loopback_endpoint(endpoint, self.networks):
            if not self._refused_logged:
                log.error(
                    "refusing to dial %s for version %s: only loopback endpoints are dialled",
                    endpoint,
                    version,
                )
                self._refused_logged = True
            self.stats.add(load.name, version, kind, REFUSED)
            return
        if len(self._inflight) >= self.concurrency:
            self.stats.add(load.name, version, kind, DROPPED)
            return
        self.stats.dispatched(load.name, version, kind)
        task = asyncio.create_task(self._send(load, version, kind, endpoint, headers))
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)

    async def _send(
        self, load: SliceLoad, version: str, kind: str, endpoint: str, headers: Mapping[str, str]
    ) -> None:
        assert self._session is not None
        outcome = CANCELLED
        try:
            async with self._session.post(
                f"http://{endpoint}{self.path}", json=dict(load.body), headers=dict(headers)
            ) as response:
                await response.read()  # a mirrored answer is read and discarded, as Envoy does
                outcome = str(response.status)
        except TimeoutError:
            outcome = TIMEOUT
        except aiohttp.ClientError:
            outcome = CONNECT_ERROR
        finally:
            self.stats.add(load.name, version, kind, outcome)


def _headers_after(
    sent: Mapping[str, str], changed: Mapping[str, str], removed: frozenset[str]
) -> dict[str, str]:
    """What a backend receives: the client's headers less the removed ones, with the route's changes."""
    headers = {k: v for k, v in lowercase_headers(sent).items() if k not in removed}
    headers.update(changed)
    return headers


def _as_resolver(resolver: HostResolver) -> Callable[[str], Awaitable[str | None]]:
    if isinstance(resolver, Mapping):
        mapping = resolver  # read at every lookup, so a caller may keep updating it

        async def lookup(host: str) -> str | None:
            return mapping.get(host)

        return lookup
    return resolver


def _as_lookup(endpoints: EndpointLookup) -> Callable[[str], str | None]:
    if isinstance(endpoints, Mapping):
        return endpoints.get
    return endpoints
