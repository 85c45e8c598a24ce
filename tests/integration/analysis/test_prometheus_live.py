"""The analysis against the sandbox's real Prometheus: real scrapes, real PromQL, real error answers.

A tiny local exporter serves counters and histograms that grow at fixed per-second rates per (slice,
version), in both metric profiles. The android slice's candidate answers 20% of requests with 503; every
other series errs 1%. The real `analyze()` must fail android and pass ios and default.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from modelrollout.analysis.batch import QueryBatcher
from modelrollout.analysis.prometheus import BadData, ExecutionError, PrometheusClient, Sample, Unavailable
from modelrollout.analysis.results import AnalysisResult
from modelrollout.analysis.run import analyze
from modelrollout.sandbox.processes import free_port
from tests.conftest import Cluster
from tests.support.samples import CANDIDATE, STABLE, make_spec

pytestmark = pytest.mark.integration

NAMESPACE = "ml"
MODEL = "recommender"
SLICES = ("ios", "android", "default")
RATES = {STABLE: 200.0, CANDIDATE: 100.0}  # requests per second per slice
LATENCY = {0.05: 0.3, 0.1: 0.6, 0.25: 0.9, 0.5: 0.99, 1.0: 1.0}  # cumulative shares, seconds
SCORES = {0.2: 0.1, 0.4: 0.3, 0.6: 0.6, 0.8: 0.9, 1.0: 1.0}
GUARDS: list[dict[str, Any]] = [
    {"name": "error-rate", "metric": "errorRate", "max": 0.05},
    {"name": "error-ratio", "metric": "errorRate", "maxRatioToStable": 1.5},
    {"name": "errors-seq", "metric": "errorRate", "test": "sequential", "maxRatioToStable": 1.0},
    {"name": "p99", "metric": "latencyP99", "maxRatioToStable": 1.2},
    {"name": "mean", "metric": "latencyMean", "maxRatioToStable": 1.2},
    {"name": "psi", "metric": "predictionPSI", "max": 0.2},
    {"name": "ks", "metric": "predictionKS", "max": 0.1},
]


def error_share(slice_name: str, version: str) -> float:
    return 0.2 if (slice_name, version) == ("android", CANDIDATE) else 0.01


def _labels(**labels: str) -> str:
    return "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"


def exposition(elapsed: float) -> str:
    """Both profiles' metrics after `elapsed` seconds of steady traffic, in Prometheus text format."""
    lines = [
        "# TYPE model_requests_total counter",
        "# TYPE model_request_duration_seconds histogram",
        "# TYPE model_prediction_score histogram",
        "# TYPE istio_requests_total counter",
        "# TYPE istio_request_duration_milliseconds histogram",
    ]
    for slice_name in SLICES:
        for version, rate in RATES.items():
            total = rate * elapsed
            errors = total * error_share(slice_name, version)
            own = {"model": MODEL, "version": version, "slice": slice_name}
            istio = {
                "reporter": "destination",
                "destination_workload_namespace": NAMESPACE,
                "destination_canonical_service": MODEL,
                "destination_version": version,
                "slice": slice_name,
            }
            for code, value in (("200", total - errors), ("503", errors)):
                lines.append(f"model_requests_total{_labels(**own, code=code)} {value}")
                lines.append(f"istio_requests_total{_labels(**istio, response_code=code)} {value}")
            for le, share in [*LATENCY.items(), (float("inf"), 1.0)]:
                text = "+Inf" if le == float("inf") else str(le)
                ms = "+Inf" if le == float("inf") else str(le * 1000)
                lines.append(
                    f"model_request_duration_seconds_bucket{_labels(**own, le=text)} {total * share}"
                )
                lines.append(
                    f"istio_request_duration_milliseconds_bucket{_labels(**istio, le=ms)} {total * share}"
                )
            lines.append(f"model_request_duration_seconds_sum{_labels(**own)} {total * 0.08}")
            lines.append(f"model_request_duration_seconds_count{_labels(**own)} {total}")
            lines.append(f"istio_request_duration_milliseconds_sum{_labels(**istio)} {total * 80.0}")
            lines.append(f"istio_request_duration_milliseconds_count{_labels(**istio)} {total}")
            for le, share in [*SCORES.items(), (float("inf"), 1.0)]:
                text = "+Inf" if le == float("inf") else str(le)
                lines.append(f"model_prediction_score_bucket{_labels(**own, le=text)} {total * share}")
            lines.append(f"model_prediction_score_sum{_labels(**own)} {total * 0.5}")
            lines.append(f"model_prediction_score_count{_labels(**own)} {total}")
    return "\n".join(lines) + "\n"


@dataclass
class Exporter:
    address: str
    started: datetime


@pytest.fixture(scope="module")
def exporter(cluster: Cluster) -> Iterator[Exporter]:
    started_wall = datetime.now(UTC)
    started = time.monotonic()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = exposition(time.monotonic() - started).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    address = f"127.0.0.1:{server.server_address[1]}"
    sandbox = cluster.require_sandbox()
    sandbox.add_scrape_target("analysis-exporter", address, {"namespace": NAMESPACE})
    try:
        yield Exporter(address, started_wall)
    finally:
        sandbox.remove_scrape_target("analysis-exporter")
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


async def settled(prometheus_url: str, profile: str, exporter: Exporter) -> AnalysisResult:
    """Analyses every second until the 10s window is full and no slice is Inconclusive."""
    spec = make_spec(
        GUARDS, slices=SLICES[:2], profile=profile, min_samples=100, window="10s", url=prometheus_url
    )
    async with PrometheusClient.from_source(spec.analysis.prometheus) as client:
        deadline = time.monotonic() + 60
        reported = 0
        while True:
            now = datetime.now(UTC)
            result = await analyze(
                client, spec, NAMESPACE, "canary", STABLE, CANDIDATE, exporter.started, now
            )
            reported += result.queries
            assert client.queries_issued == reported  # what a tick reports is what it sent
            full = now - exporter.started > timedelta(seconds=14)  # first scrape within ~5s, then 10s
            if (full and not result.inconclusive()) or time.monotonic() > deadline:
                return result
            await asyncio.sleep(1)


def _explain(result: AnalysisResult) -> str:
    return "\n".join(f"{s}: {g.verdict} {g.reason}" for s, v in result.slices.items() for g in v.guards)


@pytest.mark.parametrize("profile", ["modelrollout", "istio"])
async def test_real_queries_fail_only_the_regressed_slice(
    prometheus_url: str, exporter: Exporter, profile: str
) -> None:
    result = await settled(prometheus_url, profile, exporter)
    assert result.errors == [], result.errors
    assert result.inconclusive() == [], _explain(result)
    assert result.failing() == ["android"], _explain(result)
    # 7 guards, 5 queries: error-rate and error-ratio share the counts query, psi and ks the score histogram.
    assert result.queries == 5
    android = {g.name: g for g in result.slices["android"].guards}
    assert {name for name, g in android.items() if g.verdict == "Fail"} == {
        "error-rate",
        "error-ratio",
        "errors-seq",
    }
    assert android["error-rate"].canary == pytest.approx(0.2, abs=0.01)
    assert android["error-ratio"].stable == pytest.approx(0.01, abs=0.002)
    ios = {g.name: g for g in result.slices["ios"].guards}
    assert ios["error-rate"].samples.canary == pytest.approx(1000, rel=0.3)  # 100/s over a 10s window
    assert ios["p99"].canary == pytest.approx(0.5, rel=0.1)  # 99% of requests are <= 0.5s
    assert ios["mean"].canary == pytest.approx(0.08, rel=0.02)  # Istio's milliseconds read as seconds
    assert ios["psi"].canary == pytest.approx(0.0, abs=0.01)
    assert ios["errors-seq"].verdict == "Pass"
    assert result.slices["default"].verdict == "Pass"


async def test_malformed_promql_is_bad_data_from_the_real_server(prometheus_url: str) -> None:
    async with PrometheusClient(prometheus_url, timeout=1.5) as client:
        assert await client.query("vector(1)") == [Sample({}, 1.0)]  # a fractional timeout is accepted
        with pytest.raises(BadData, match="parse error"):
            await client.query("sum by (slice (model_requests_total")


async def test_many_to_many_match_is_an_execution_error(prometheus_url: str, exporter: Exporter) -> None:
    query = 'model_requests_total + on() model_requests_total{slice="ios"}'
    async with PrometheusClient(prometheus_url, timeout=5) as client:
        deadline = time.monotonic() + 30
        while not await client.query('count(model_requests_total{slice="ios"}) > 1'):
            assert time.monotonic() < deadline, "exporter never scraped"
            await asyncio.sleep(0.5)
        with pytest.raises(ExecutionError, match="execution"):
            await client.query(query)


async def test_unreachable_port_is_unavailable() -> None:
    port = free_port()  # bound then released: nothing listens there
    spec = make_spec(GUARDS, url=f"http://127.0.0.1:{port}")
    async with PrometheusClient.from_source(spec.analysis.prometheus) as client:
        with pytest.raises(Unavailable, match="cannot reach"):
            await client.query("up")
        now = datetime.now(UTC)
        result = await analyze(
            client, spec, NAMESPACE, "canary", STABLE, CANDIDATE, now - timedelta(minutes=5), now
        )
    assert {v.verdict for v in result.slices.values()} == {"Inconclusive"}
    assert len(result.errors) == result.queries == 5


@pytest.mark.parametrize("profile", ["modelrollout", "istio"])
async def test_batched_queries_judge_exactly_as_a_rollouts_own(
    prometheus_url: str, exporter: Exporter, profile: str
) -> None:
    """The batched form of each query (grouped by namespace and model too) gives the same verdicts and values."""
    own = await settled(prometheus_url, profile, exporter)
    spec = make_spec(
        GUARDS, slices=SLICES[:2], profile=profile, min_samples=100, window="10s", url=prometheus_url
    )
    now = datetime.now(UTC)
    async with PrometheusClient.from_source(spec.analysis.prometheus) as client:
        batcher = QueryBatcher(window=0.05)
        unbatched = await analyze(client, spec, NAMESPACE, "canary", STABLE, CANDIDATE, exporter.started, now)
        batched = await analyze(
            client, spec, NAMESPACE, "canary", STABLE, CANDIDATE, exporter.started, now, batcher
        )
    assert batched.errors == [], batched.errors
    assert batched.failing() == own.failing() == ["android"], _explain(batched)
    assert batcher.batches == 5  # every built-in query has a batched form; one batch each
    for name, verdict in unbatched.slices.items():
        expected = [(g.name, g.verdict, g.canary, g.stable) for g in verdict.guards]
        assert [(g.name, g.verdict, g.canary, g.stable) for g in batched.slices[name].guards] == expected
