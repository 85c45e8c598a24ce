"""The blue-green bake: stable serves nobody after the switch, so relative guards read stable's own window
before the switch. Without that baseline a 100% share with relative guards can never pass."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs

import httpx
import pytest

from modelrollout.analysis.prometheus import PrometheusClient
from modelrollout.analysis.run import analyze
from modelrollout.analysis.verdicts import judge
from tests.support.samples import CANDIDATE, STABLE, counts, make_spec

NOW = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
SWITCH = NOW - timedelta(minutes=3)
C, S = CANDIDATE, STABLE
GUARDS = [
    {"name": "error-rate", "metric": "errorRate", "max": 0.05},
    {"name": "error-ratio", "metric": "errorRate", "maxRatioToStable": 1.5},
]
ABSOLUTE_ONLY = {"name": "p99", "metric": "latencyP99", "max": 0.5}

# After the switch: the candidate serves every slice, stable nothing (its series show 0 requests).
AFTER = counts(
    {(s, v): (n, e) for s in ("ios", "android", "default") for v, n, e in ((C, 2000, 10), (S, 0, 0))}
)


def before(android_errors: float) -> list:  # type: ignore[type-arg]
    """Stable's window just before the switch, when it served everything."""
    table = {(s, S): (2000.0, 10.0) for s in ("ios", "default")}
    table[("android", S)] = (2000.0, android_errors)
    return counts(table)


def test_without_a_baseline_a_relative_guard_at_full_share_is_never_conclusive() -> None:
    spec = make_spec(GUARDS)
    result = judge(spec, "canary", S, C, {"error-rate": AFTER, "error-ratio": AFTER}, NOW)
    ratio = {g.name: g for g in result.slices["ios"].guards}["error-ratio"]
    assert ratio.verdict == "Inconclusive"
    assert "too few samples" in ratio.reason


def test_with_stables_window_before_the_switch_relative_guards_pass_and_fail() -> None:
    spec = make_spec(GUARDS)
    outcomes = {"error-rate": AFTER, "error-ratio": AFTER}
    # Candidate 10/2000 = 0.005 everywhere; stable 0.005 before the switch, except android's 0.001.
    baseline = {"error-ratio": before(android_errors=2)}
    result = judge(spec, "canary", S, C, outcomes, NOW, baseline=baseline)
    assert result.slices["ios"].verdict == "Pass"
    android = {g.name: g for g in result.slices["android"].guards}["error-ratio"]
    assert android.verdict == "Fail"
    assert android.stable == pytest.approx(0.001)
    assert android.canary == pytest.approx(0.005)
    assert (android.samples.stable, android.samples.canary) == (2000, 2000)
    assert android.reason.endswith("(stable: its window before the switch)")
    absolute = {g.name: g for g in result.slices["android"].guards}["error-rate"]
    assert absolute.verdict == "Pass"
    assert "before the switch" not in absolute.reason


def test_a_failed_baseline_query_is_inconclusive_never_pass() -> None:
    from modelrollout.analysis.results import Unavailable

    spec = make_spec(GUARDS)
    result = judge(
        spec,
        "canary",
        S,
        C,
        {"error-rate": AFTER, "error-ratio": AFTER},
        NOW,
        baseline={"error-ratio": Unavailable("down")},
    )
    ratio = {g.name: g for g in result.slices["ios"].guards}["error-ratio"]
    assert ratio.verdict == "Inconclusive"


async def test_analyze_reads_stable_at_the_switch_only_for_guards_that_need_it() -> None:
    asked: list[tuple[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        form = parse_qs(request.content.decode())
        query, at = form["query"][0], form["time"][0]
        asked.append((query, at))
        if "model_requests_total" not in query:
            return httpx.Response(
                200, content=b'{"status":"success","data":{"resultType":"vector","result":[]}}'
            )
        samples = before(2) if datetime.fromtimestamp(float(at), UTC) == SWITCH else AFTER
        result = [{"metric": s.labels, "value": [0, str(s.value)]} for s in samples]
        body = {"status": "success", "data": {"resultType": "vector", "result": result}}
        return httpx.Response(200, content=json.dumps(body).encode())

    spec = make_spec([*GUARDS, ABSOLUTE_ONLY])
    async with PrometheusClient("http://p:9090", transport=httpx.MockTransport(handler)) as client:
        result = await analyze(client, spec, "ml", "canary", S, C, SWITCH, NOW, baseline_at=SWITCH)
    at_switch = [q for q, at in asked if datetime.fromtimestamp(float(at), UTC) == SWITCH]
    assert len(at_switch) == 1, "only the query behind the relative guard is read at the switch"
    assert "model_requests_total" in at_switch[0]
    assert result.queries == 3  # counts and buckets now, counts at the switch
    assert result.failing() == ["android"]
