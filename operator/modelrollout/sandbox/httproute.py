"""Where a request goes under a live Gateway API HTTPRoute: the traffic generator's model of a Gateway API
data plane (there is none in the sandbox).

What is modelled, from the HTTPRoute specification (v1):
- A rule matches when any of its matches holds; a match holds when its path, method, every header match and
  every query parameter match hold. A rule without matches, or a match without path, matches the path
  prefix `/`. Header names compare case-insensitively. Exact compares whole values; RegularExpression is
  taken as an RE2 full match, as the Envoy-based implementations (Istio, Envoy Gateway, Cilium) read it (the
  dialect is implementation-specific). PathPrefix matches whole path elements (`/foo` takes `/foo/bar`, not
  `/foobar`).
- Rules are not tried in order. Among every match that holds, precedence goes to an Exact path, then the
  longest PathPrefix, then a method match, then the most header matches, then the most query parameter
  matches; remaining ties go to the first rule in list order. (Ties between routes, by creation time and
  name, do not arise: the generator follows one HTTPRoute.) Nothing matching means 404.
- The chosen rule's filters run in order: RequestHeaderModifier sets, adds and removes request headers;
  each RequestMirror sends a copy, carrying the headers as modified so far, with its `percent` or
  `fraction` (all requests when neither is given), and the copy's answer is discarded.
- backendRefs are picked by weight (default 1); a backend of weight 0 takes nothing, and a rule whose
  weights are all 0 (or that has no backend) answers 500: no destination.
Not modelled: hostnames and parentRefs (the generator is the one client of the one route), redirects and
rewrites (no destination), backend-level filters other than RequestHeaderModifier, RegularExpression path
precedence (implementation-specific; ranked here below every Exact and PathPrefix match).
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from modelrollout.sandbox.routing import Decision
from modelrollout.serving.slices import lowercase_headers

Precedence = tuple[int, int, int, int, int]


def _compiled(pattern: str) -> re.Pattern[str] | None:
    try:
        return re.compile(pattern)
    except re.error:
        return None  # a pattern the data plane could not compile matches nothing


@dataclass(frozen=True)
class _Match:
    path_type: str
    path: str
    method: str | None
    headers: tuple[tuple[str, str, str], ...]  # (lowercase name, type, value)
    query: tuple[tuple[str, str, str], ...]  # (name, type, value)

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> _Match:
        path = raw.get("path") if isinstance(raw.get("path"), Mapping) else {}
        assert isinstance(path, Mapping)
        return cls(
            path_type=str(path.get("type") or "PathPrefix"),
            path=str(path.get("value") or "/"),
            method=str(raw["method"]) if raw.get("method") else None,
            headers=_conditions(raw.get("headers"), lower=True),
            query=_conditions(raw.get("queryParams"), lower=False),
        )

    def precedence(self) -> Precedence:
        exact = self.path_type == "Exact"
        prefix = len(self.path.rstrip("/")) + 1 if self.path_type == "PathPrefix" else 0
        return (
            int(exact),
            0 if exact else prefix,
            int(self.method is not None),
            len(self.headers),
            len(self.query),
        )

    def holds(self, headers: Mapping[str, str], method: str, path: str, query: Mapping[str, str]) -> bool:
        if not _path_holds(self.path_type, self.path, path):
            return False
        if self.method is not None and self.method != method:
            return False
        for name, kind, value in self.headers:
            if not _value_holds(kind, value, headers.get(name)):
                return False
        return all(_value_holds(kind, value, query.get(name)) for name, kind, value in self.query)


def _conditions(raw: Any, *, lower: bool) -> tuple[tuple[str, str, str], ...]:
    found = []
    for item in raw or []:
        if isinstance(item, Mapping) and isinstance(item.get("name"), str):
            name = item["name"].lower() if lower else item["name"]
            found.append((name, str(item.get("type") or "Exact"), str(item.get("value", ""))))
    return tuple(found)


def _value_holds(kind: str, expected: str, actual: str | None) -> bool:
    if actual is None:
        return False
    if kind == "Exact":
        return actual == expected
    if kind == "RegularExpression":
        pattern = _compiled(expected)
        return pattern is not None and pattern.fullmatch(actual) is not None
    return False  # a type this model does not know never matches


def _path_holds(kind: str, expected: str, path: str) -> bool:
    if kind == "Exact":
        return path == expected
    if kind == "PathPrefix":
        prefix = expected.rstrip("/")
        return prefix == "" or path == prefix or path.startswith(prefix + "/")
    if kind == "RegularExpression":
        pattern = _compiled(expected)
        return pattern is not None and pattern.fullmatch(path) is not None
    return False


@dataclass(frozen=True)
class _Backend:
    name: str
    weight: int
    set_headers: Mapping[str, str] = field(default_factory=dict)
    remove_headers: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Rule:
    name: str
    matches: tuple[_Match, ...]
    filters: tuple[Mapping[str, Any], ...]
    backends: tuple[_Backend, ...]


def _backend_key(ref: Mapping[str, Any]) -> str | None:
    """A Service backend as the generator names destinations: its name (`name.namespace` across namespaces)."""
    if (ref.get("group") or "") != "" or (ref.get("kind") or "Service") != "Service":
        return None
    name = ref.get("name")
    if not isinstance(name, str):
        return None
    return f"{name}.{ref['namespace']}" if ref.get("namespace") else name


def _header_changes(modifier: Any) -> tuple[dict[str, str], tuple[str, ...]]:
    if not isinstance(modifier, Mapping):
        return {}, ()
    changed: dict[str, str] = {}
    for kind in ("add", "set"):  # set wins over add for the same header
        for item in modifier.get(kind) or []:
            if isinstance(item, Mapping) and isinstance(item.get("name"), str):
                changed[item["name"].lower()] = str(item.get("value", ""))
    removed = tuple(str(name).lower() for name in modifier.get("remove") or [])
    return changed, removed


def _parse_rule(index: int, raw: Mapping[str, Any]) -> _Rule:
    matches = [m for m in raw.get("matches") or [] if isinstance(m, Mapping)] or [{}]
    backends = []
    for ref in raw.get("backendRefs") or []:
        key = _backend_key(ref) if isinstance(ref, Mapping) else None
        if key is None:
            continue
        weight = ref.get("weight", 1)
        changed: dict[str, str] = {}
        removed: tuple[str, ...] = ()
        for entry in ref.get("filters") or []:
            if isinstance(entry, Mapping) and entry.get("type") == "RequestHeaderModifier":
                changed, removed = _header_changes(entry.get("requestHeaderModifier"))
        backends.append(
            _Backend(key, int(weight) if isinstance(weight, int) and weight > 0 else 0, changed, removed)
        )
    name = raw.get("name")
    return _Rule(
        name=name if isinstance(name, str) and name else f"#{index}",
        matches=tuple(_Match.parse(m) for m in matches),
        filters=tuple(f for f in raw.get("filters") or [] if isinstance(f, Mapping)),
        backends=tuple(backends),
    )


def _mirror_percent(mirror: Mapping[str, Any]) -> float:
    percent = mirror.get("percent")
    if isinstance(percent, int | float) and not isinstance(percent, bool):
        return max(0.0, min(100.0, float(percent)))
    fraction = mirror.get("fraction")
    if isinstance(fraction, Mapping):
        numerator, denominator = fraction.get("numerator", 0), fraction.get("denominator", 100)
        if isinstance(numerator, int) and isinstance(denominator, int) and denominator > 0:
            return max(0.0, min(100.0, 100.0 * numerator / denominator))
        return 0.0
    return 100.0


class HTTPRouteTable:
    """The rules of one HTTPRoute, routed by Gateway API precedence."""

    def __init__(self, rules: Sequence[_Rule]) -> None:
        self.rules = list(rules)

    @classmethod
    def from_http_route(cls, http_route: Mapping[str, Any]) -> HTTPRouteTable:
        spec = http_route.get("spec") or {}
        rules = (spec.get("rules") or []) if isinstance(spec, Mapping) else []
        return cls([_parse_rule(i, rule) for i, rule in enumerate(rules) if isinstance(rule, Mapping)])

    @property
    def hosts(self) -> frozenset[str]:
        """Every backend and mirror Service named by a rule."""
        found = {backend.name for rule in self.rules for backend in rule.backends}
        for rule in self.rules:
            for entry in rule.filters:
                mirror = entry.get("requestMirror") if entry.get("type") == "RequestMirror" else None
                key = _backend_key(mirror.get("backendRef") or {}) if isinstance(mirror, Mapping) else None
                if key is not None:
                    found.add(key)
        return frozenset(found)

    def select(
        self, headers: Mapping[str, str], *, method: str = "POST", path: str = "/predict"
    ) -> _Rule | None:
        """The rule Gateway API gives the request: the holding match of highest precedence, first rule on ties."""
        lowered = lowercase_headers(headers)
        parts = urlsplit(path)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        best: tuple[Precedence, int] | None = None
        chosen: _Rule | None = None
        for index, rule in enumerate(self.rules):
            for match in rule.matches:
                if not match.holds(lowered, method, parts.path or "/", query):
                    continue
                rank = (match.precedence(), -index)
                if best is None or rank > best:
                    best, chosen = rank, rule
        return chosen

    def route(
        self, headers: Mapping[str, str], rng: random.Random, *, method: str = "POST", path: str = "/predict"
    ) -> Decision:
        rule = self.select(headers, method=method, path=path)
        if rule is None:
            return Decision(route=None, destination=None)
        current: dict[str, str] = {}
        removed: set[str] = set()
        mirrors: list[str] = []
        mirror_headers: list[Mapping[str, str]] = []
        for entry in rule.filters:
            kind = entry.get("type")
            if kind == "RequestHeaderModifier":
                changed, dropped = _header_changes(entry.get("requestHeaderModifier"))
                current.update(changed)
                removed.update(dropped)
            elif kind == "RequestMirror" and isinstance(entry.get("requestMirror"), Mapping):
                mirror = entry["requestMirror"]
                key = _backend_key(mirror.get("backendRef") or {})
                if key is not None and rng.random() * 100.0 < _mirror_percent(mirror):
                    mirrors.append(key)
                    mirror_headers.append(_applied(headers, current, removed))
        backend = _pick(rule.backends, rng)
        served_headers = dict(current)
        if backend is not None:
            served_headers.update(backend.set_headers)
            removed.update(backend.remove_headers)
        return Decision(
            route=rule.name,
            destination=backend.name if backend is not None else None,
            mirrors=tuple(mirrors),
            headers=served_headers,
            removed=frozenset(removed),
            mirror_headers=tuple(mirror_headers),
        )


def _applied(original: Mapping[str, str], changed: Mapping[str, str], removed: set[str]) -> dict[str, str]:
    """The request headers after the modifications so far: what a mirror filter at this point copies."""
    headers = {k: v for k, v in lowercase_headers(original).items() if k not in removed}
    headers.update(changed)
    return headers


def _pick(backends: Sequence[_Backend], rng: random.Random) -> _Backend | None:
    total = sum(b.weight for b in backends)
    if total <= 0:
        return None  # Gateway API: no backend with weight above 0 answers 500
    draw = rng.random() * total
    for backend in backends:
        draw -= backend.weight
        if draw < 0 and backend.weight > 0:
            return backend
    return next(b for b in reversed(backends) if b.weight > 0)
