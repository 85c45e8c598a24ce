"""The Grafana dashboard's PromQL against the sandbox's real Prometheus: every expression parses, and with the
operator's real metrics exporter scraped, every panel shows data."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry, start_http_server

from modelrollout.analysis.results import AnalysisResult, SliceVerdict
from modelrollout.api.status import GuardVerdict, Samples
from modelrollout.controller.metrics import OperatorMetrics
from modelrollout.sandbox.processes import free_port
from tests.conftest import Cluster
from tests.support.dashboard import expressions, load, substitute
from tests.support.world import World, make_spec

pytestmark = pytest.mark.integration


def query(prometheus: str, expr: str) -> dict[str, Any]:
    response = httpx.get(f"{prometheus}/api/v1/query", params={"query": expr}, timeout=10)
    return dict(response.json())


def selections(namespace: str, rollout: str) -> list[dict[str, str]]:
    """Grafana's three ways of filling a regex-matched variable: one value, several, and All."""
    return [
        {"namespace": namespace, "rollout": rollout, "slice": "ios", "guard": "error-rate"},
        {
            "namespace": f"({namespace}|ml)",
            "rollout": f"({rollout}|ranker)",
            "slice": "(ios|android)",
            "guard": "(error-rate|p99)",
        },
        {"namespace": ".*", "rollout": ".*", "slice": ".*", "guard": ".*"},
    ]


def test_every_dashboard_expression_parses_in_prometheus(prometheus_url: str) -> None:
    exprs = expressions(load())
    assert len(exprs) > 20
    for values in selections("ml", "recommender"):
        for expr in exprs:
            answer = query(prometheus_url, substitute(expr, values))
            assert answer["status"] == "success", (
                f"{expr}\n-> {answer.get('errorType')}: {answer.get('error')}"
            )


def test_a_broken_expression_is_refused_so_the_check_above_can_fail(prometheus_url: str) -> None:
    answer = query(prometheus_url, "sum by (slice (modelrollout_phase)")
    assert (answer["status"], answer["errorType"]) == ("error", "bad_data")


@pytest.fixture
def exporter(cluster: Cluster) -> Iterator[tuple[OperatorMetrics, str]]:
    """The operator's metrics, served on 127.0.0.1 and scraped by the sandbox's Prometheus."""
    sandbox = cluster.require_sandbox()
    metrics = OperatorMetrics(CollectorRegistry())
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=metrics.registry)
    target = f"dashboard-{secrets.token_hex(3)}"
    sandbox.add_scrape_target(target, f"127.0.0.1:{port}", {"job": "modelrollout-operator"})
    try:
        yield metrics, target
    finally:
        sandbox.remove_scrape_target(target)
        server.shutdown()
        thread.join(timeout=5)


def canary_status() -> Any:
    world = World(make_spec())
    world.bootstrap()
    world.set_version("v2")
    world.run_until(lambda w: w.status.phase == "Canary")
    return world.status


def analysis(status: Any) -> AnalysisResult:
    guards = [
        GuardVerdict(
            name="error-rate",
            metric="errorRate",
            verdict="Pass",
            stable=0.01,
            canary=0.012,
            threshold=0.05,
            samples=Samples(stable=900, canary=100),
        ),
        GuardVerdict(
            name="error-ratio",
            metric="errorRate",
            verdict="Fail",
            stable=0.01,
            canary=0.03,
            threshold=0.015,
            samples=Samples(stable=900, canary=100),
        ),
    ]
    slices = {
        s.name: SliceVerdict(
            name=s.name, verdict="Fail", samples=Samples(stable=900, canary=100), guards=guards
        )
        for s in status.slices
    }
    return AnalysisResult(slices=slices, queries=2, errors=[], evaluated_at=status.last_analysis)


def test_every_panel_shows_data_from_the_operators_own_metrics(
    exporter: tuple[OperatorMetrics, str], prometheus_url: str
) -> None:
    metrics, _ = exporter
    namespace, rollout = f"ns-{secrets.token_hex(3)}", "recommender"
    status = canary_status()
    result = analysis(status)
    metrics.observe_status(namespace, rollout, status)
    # Ticks go on until Prometheus has scraped the counters at least twice with different values: under
    # a loaded machine the first scrape can come late, and increase() needs two samples in its window.
    scraped = (
        f'count_over_time(modelrollout_step{{namespace="{namespace}"}}[1m]) >= 4 and on() '
        f'increase(modelrollout_notification_failures_total{{namespace="{namespace}"}}[1m]) > 0'
    )
    for _ in range(120):
        metrics.observe_analysis(namespace, rollout, result, 0.04)
        metrics.tick_seconds.observe(0.07)
        metrics.api_writes.labels("status").inc()
        metrics.api_requests.labels("get", "modelrollout").inc()
        metrics.tick_lateness.observe(0.02)
        metrics.prometheus_requests.inc(2)
        metrics.decisions.labels(namespace, rollout, "StepPassed").inc()
        metrics.errors.labels(namespace, rollout, "ApplyFailed").inc()
        metrics.notification_failures.labels(namespace, rollout).inc()
        metrics.route_drift.labels(namespace, rollout, "modelrollout-ios").inc()
        time.sleep(0.5)
        if query(prometheus_url, scraped)["data"]["result"]:
            break
    else:
        raise AssertionError("Prometheus did not scrape the operator's metrics within 60 s")

    slice_name = status.slices[0].name
    values = {"namespace": namespace, "rollout": rollout, "slice": slice_name, "guard": "error-ratio"}
    empty = []
    for expr in expressions(load()):
        answer = query(prometheus_url, substitute(expr, values))
        assert answer["status"] == "success", expr
        if not answer["data"]["result"]:
            empty.append(expr)
    assert not empty, "panels without data:\n" + "\n".join(empty)
