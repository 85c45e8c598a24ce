"""Hypothesis strategies that draw valid ModelRollout specs as the JSON a user would send.

Every invariant of the API is respected by construction: DNS-label names, lowercase header names, one match
operator per header, strictly ascending weights, guards with a threshold, overrides only on declared slices,
sequential tests only on the built-in errorRate, minReadyReplicas within replicas, unique names.
"""

from __future__ import annotations

import math
from typing import Any

from hypothesis import strategies as st

from modelrollout.api.common import nanoseconds
from modelrollout.api.guards import BUILTIN_METRICS
from modelrollout.api.spec import MAX_STEPS

Draw = st.DrawFn

NAME = st.from_regex(r"[a-z]([-a-z0-9]{0,12}[a-z0-9])?", fullmatch=True).filter(lambda n: n != "default")
HEADER = st.from_regex(r"[a-z0-9]([-a-z0-9_]{0,14}[a-z0-9])?", fullmatch=True)
VERSION = st.from_regex(r"[a-z0-9]([-a-z0-9.]{0,14}[a-z0-9])?", fullmatch=True)
# Header values are free text (no pattern on either side), Unicode included.
TEXT = st.text(st.characters(min_codepoint=0x20, exclude_categories=["Cs"]), max_size=24)
REGEX = st.sampled_from(["^ios-.*", "Mozilla/5\\.0 .*", "[0-9]{2,4}", "(na|eu)-(west|east)", ".+"])
NUMBER = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
POSITIVE = st.floats(min_value=0, max_value=100, exclude_min=True, allow_nan=False)
FEATURE_TYPE = st.sampled_from(["string", "int", "float", "bool", "bytes", "string[]", "int[]", "float[]"])


@st.composite
def durations(draw: Draw, low: str = "0s", high: str = "168h") -> str:
    """A duration within [low, high], written as a person might: `90s`, `1m30s`, `1.5m`, `250ms`, `2h`."""
    milliseconds = draw(st.integers(math.ceil(nanoseconds(low) / 1e6), nanoseconds(high) // 1_000_000))
    hours, rest = divmod(milliseconds, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    whole, millis = divmod(rest, 1000)
    form = draw(st.sampled_from(["compound", "seconds", "milliseconds", "fraction"]))
    if form == "seconds" and millis == 0 and milliseconds < 100_000_000:
        return f"{milliseconds // 1000}s"
    if form == "milliseconds" and milliseconds < 100_000:
        return f"{milliseconds}ms"
    if form == "fraction" and milliseconds < 100_000_000:
        return f"{milliseconds / 1000:.3f}s"
    parts = [(hours, "h"), (minutes, "m"), (whole, "s"), (millis, "ms")]
    return "".join(f"{value}{unit}" for value, unit in parts if value) or "0s"


def optional(into: dict[str, Any], draw: Draw, key: str, strategy: st.SearchStrategy[Any]) -> None:
    """Sets `key` to a drawn value about half of the time."""
    if draw(st.booleans()):
        into[key] = draw(strategy)


@st.composite
def slices(draw: Draw) -> list[dict[str, Any]]:
    names = draw(st.lists(NAME, max_size=8, unique=True))
    out = []
    for name in names:
        headers = draw(st.dictionaries(HEADER, st.just(None), min_size=1, max_size=3))
        match = {}
        for header in headers:
            kind = draw(st.sampled_from(["exact", "prefix", "regex"]))
            match[header] = {kind: draw(REGEX if kind == "regex" else TEXT)}
        out.append({"name": name, "match": {"headers": match}})
    return out


@st.composite
def header_route(draw: Draw) -> dict[str, Any]:
    """A header (and optionally its value match) that routes to the candidate."""
    route: dict[str, Any] = {"header": draw(HEADER)}
    if draw(st.booleans()):
        kind = draw(st.sampled_from(["exact", "prefix", "regex"]))
        route["value"] = {kind: draw(REGEX if kind == "regex" else TEXT)}
    return route


@st.composite
def blue_green(draw: Draw) -> dict[str, Any]:
    out: dict[str, Any] = {}
    optional(out, draw, "bake", durations())
    if draw(st.booleans()):
        preview = draw(header_route())
        optional(preview, draw, "duration", durations())
        out["preview"] = preview
    return out


@st.composite
def thresholds(draw: Draw, at_least_one: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    optional(out, draw, "max", NUMBER)
    optional(out, draw, "min", NUMBER)
    optional(out, draw, "maxRatioToStable", POSITIVE)
    optional(out, draw, "maxDeltaToStable", st.floats(min_value=0, max_value=1e3, allow_nan=False))
    if "min" in out and "max" in out and out["min"] > out["max"]:
        out["min"], out["max"] = out["max"], out["min"]  # admission refuses min > max
    if at_least_one and not out:
        out["maxRatioToStable"] = draw(POSITIVE)
    return out


@st.composite
def guards(draw: Draw, slice_names: list[str]) -> list[dict[str, Any]]:
    names = draw(st.lists(NAME, min_size=1, max_size=5, unique=True))
    out = []
    for name in names:
        guard = {"name": name, **draw(thresholds(at_least_one=True))}
        if draw(st.booleans()):
            guard["metric"] = draw(st.sampled_from(BUILTIN_METRICS))
        else:
            guard["metric"] = draw(st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,20}", fullmatch=True))
            guard["query"] = 'sum by (slice, version) (rate(x_total{model="{model}"}[{window}]))'
        if guard["metric"] == "errorRate" and "query" not in guard:
            optional(guard, draw, "test", st.sampled_from(["threshold", "sequential"]))
        if guard["metric"] in ("predictionPSI", "predictionKS"):  # they compare with stable themselves
            guard.pop("maxRatioToStable", None)
            guard.pop("maxDeltaToStable", None)
            if not {"max", "min"} & set(guard):
                guard["max"] = draw(POSITIVE)
        optional(guard, draw, "immediate", st.booleans())
        optional(guard, draw, "failureLimit", st.integers(1, 100))
        optional(
            guard, draw, "phases", st.lists(st.sampled_from(["shadow", "canary"]), min_size=1, max_size=2)
        )
        optional(guard, draw, "minSamples", st.integers(1, 100_000))
        keys = draw(st.lists(st.sampled_from([*slice_names, "default"]), unique=True, max_size=4))
        overrides = {}
        for key in keys:
            override = draw(thresholds(at_least_one=False))
            optional(override, draw, "minSamples", st.integers(1, 10_000))
            overrides[key] = override
        if overrides:
            guard["slices"] = overrides
        out.append(guard)
    return out


def webhook(draw: Draw) -> dict[str, Any]:
    hook = {
        "url": draw(
            st.from_regex(r"https?://[a-z]{1,10}\.example\.com(:[0-9]{2,5})?(/[!-~]{0,20})?", fullmatch=True)
        )
    }
    optional(hook, draw, "timeout", durations("100ms", "60s"))
    return hook


def _relative_in_canary(guard: dict[str, Any]) -> bool:
    bounds = [guard, *(guard.get("slices") or {}).values()]
    relative = any("maxRatioToStable" in b or "maxDeltaToStable" in b for b in bounds)
    return relative and "canary" in guard.get("phases", ["canary"])


@st.composite
def specs(draw: Draw) -> dict[str, Any]:
    """A valid spec, as JSON."""
    replicas = draw(st.integers(1, 50))
    model: dict[str, Any] = {
        "name": draw(NAME),
        "version": draw(VERSION),
        "uri": "s3://models/m/" + draw(VERSION),
    }
    if draw(st.booleans()):
        feature_names = draw(
            st.lists(st.from_regex(r"[A-Za-z_][A-Za-z0-9_.-]{0,20}", fullmatch=True), max_size=6, unique=True)
        )
        schema: dict[str, Any] = {
            "version": draw(st.integers(0, 1000)),
            "features": [
                {"name": n, "type": draw(FEATURE_TYPE), "required": draw(st.booleans())}
                for n in feature_names
            ],
        }
        optional(schema, draw, "extraFeatures", st.sampled_from(["ignore", "reject"]))
        model["schema"] = schema
    declared = draw(slices())
    weights = sorted(draw(st.lists(st.integers(1, 100), min_size=1, max_size=MAX_STEPS, unique=True)))
    steps = []
    for weight in weights:
        step: dict[str, Any] = {"weight": weight}
        optional(step, draw, "pause", durations())
        steps.append(step)
    strategy: dict[str, Any] = {"canary": {"steps": steps}}
    if draw(st.booleans()):
        strategy = {"blueGreen": draw(blue_green())}
    if draw(st.booleans()):
        strategy["qaOverride"] = draw(header_route())
    if draw(st.booleans()):
        shadow = {"duration": draw(durations())}
        optional(shadow, draw, "mirrorPercent", POSITIVE)
        strategy["shadow"] = shadow
    optional(strategy, draw, "promotion", st.sampled_from([{"mode": "auto"}, {"mode": "manual"}, {}]))
    analysis: dict[str, Any] = {
        "prometheus": {"url": "http://prometheus.monitoring:9090"},
        "guards": draw(guards([s["name"] for s in declared])),
    }
    if steps[-1]["weight"] == 100 and any(_relative_in_canary(g) for g in analysis["guards"]):
        steps[-1]["weight"] = 99  # admission refuses it: stable gets no requests to be relative to
        if len(steps) > 1 and steps[-2]["weight"] == 99:
            steps.pop()
    optional(analysis, draw, "interval", durations("1s", "1h"))
    optional(analysis, draw, "window", durations("1s", "24h"))
    optional(analysis, draw, "metrics", st.sampled_from([{"profile": "modelrollout"}, {"profile": "istio"}]))
    optional(analysis, draw, "minSamples", st.integers(1, 100_000))
    optional(analysis, draw, "onInconclusive", st.sampled_from(["hold", "fail"]))
    optional(analysis, draw, "maxInconclusive", st.integers(1, 1000))
    optional(analysis, draw, "alpha", st.floats(0, 0.5, exclude_min=True, exclude_max=True))
    spec: dict[str, Any] = {
        "model": model,
        "template": {"spec": {"containers": [{"name": "server", "image": "ghcr.io/example/server:1.0"}]}},
        "replicas": replicas,
        "traffic": {"istio": {"host": "m.ml.svc.cluster.local", "virtualService": draw(NAME)}},
        "strategy": strategy,
        "analysis": analysis,
    }
    if declared:
        spec["slices"] = declared
    if draw(st.booleans()):
        readiness: dict[str, Any] = {}
        optional(readiness, draw, "modelReadyPath", st.from_regex(r"/[!-~]{0,30}", fullmatch=True))
        optional(readiness, draw, "port", st.integers(1, 65535))
        optional(readiness, draw, "loadTimeout", durations("1s", "24h"))
        optional(readiness, draw, "minReadyReplicas", st.integers(1, replicas))
        spec["readiness"] = readiness
    if draw(st.booleans()):
        spec["gates"] = [
            {"name": n, "webhook": webhook(draw)}
            for n in draw(st.lists(NAME, min_size=1, max_size=3, unique=True))
        ]
    if draw(st.booleans()):
        rollback: dict[str, Any] = {}
        optional(rollback, draw, "scaleDownDelay", durations())
        optional(rollback, draw, "keepPreviousWarm", durations())
        optional(rollback, draw, "rollbackSafety", st.sampled_from(["block", "warn"]))
        if draw(st.booleans()):
            rollback["notify"] = [{"webhook": webhook(draw)}]
        spec["rollback"] = rollback
    return spec
