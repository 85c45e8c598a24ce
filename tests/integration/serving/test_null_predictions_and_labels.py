"""Null predictions and delayed labels, from real model servers through the real Prometheus to verdicts.

Two serving apps (stable v1, candidate v2) on 127.0.0.1 are scraped by the sandbox's Prometheus. v2 answers
android requests with a null prediction; its ios answers are right only half as often as v1's. The labels
arrive after the answers and are all sent to v1, as a mesh may route them: v1 counts them for the version
that answered. The real `analyze()` then fails android on nullPredictionRate and ios on accuracy.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncGenerator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import httpx
import pytest
from aiohttp import web

from modelrollout.analysis.prometheus import PrometheusClient
from modelrollout.analysis.run import analyze
from modelrollout.api.spec import ModelRolloutSpec, Slice
from modelrollout.sandbox.processes import free_port
from modelrollout.serving import Prediction, RequestContext, ServingConfig, create_app
from tests.conftest import Cluster
from tests.support import specs

pytestmark = pytest.mark.integration
SLICES = [specs.by_header("ios", "x-platform", "ios"), specs.by_header("android", "x-platform", "android")]
REQUESTS = 60  # per slice and version


class Model:
    """Label "1" for every request; v2 answers android with nothing at all."""

    def __init__(self, version: str) -> None:
        self.version = version

    async def load(self) -> None:
        return None

    async def warmup(self) -> None:
        return None

    async def predict(self, features: Mapping[str, Any], context: RequestContext) -> Prediction | None:
        if self.version == "v2" and context.slice == "android":
            return None
        return Prediction(score=0.7, label=1)


async def serve(config: ServingConfig) -> AsyncGenerator[str, None]:
    runner = web.AppRunner(create_app(Model(config.model_version), config))
    await runner.setup()
    await web.TCPSite(runner, config.host, config.port).start()
    try:
        yield f"http://127.0.0.1:{config.port}"
    finally:
        await runner.cleanup()


async def scraped(prometheus: str, selector: str, series: int, within: float = 30.0) -> None:
    """Waits until Prometheus holds `series` series for the selector."""
    deadline = asyncio.get_running_loop().time() + within
    async with httpx.AsyncClient(timeout=5.0) as client:
        while True:
            response = await client.get(f"{prometheus}/api/v1/query", params={"query": selector})
            found = len(response.json()["data"]["result"])
            if found >= series:
                return
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"Prometheus has {found} of {series} series for {selector}")
            await asyncio.sleep(0.3)


HALF_RIGHT = {("v2", "correct"): REQUESTS // 2, ("v2", "incorrect"): REQUESTS // 2}


async def counters(prometheus: str, selector: str) -> dict[tuple[str, str], float]:
    """The raw counter values by (version, outcome), summed over the replicas that counted them (the last 30 s:
    a scrape a loaded machine times out marks the series stale for an instant query)."""
    async with httpx.AsyncClient(timeout=5.0) as client:
        response = await client.get(
            f"{prometheus}/api/v1/query",
            params={"query": f"sum by (version, outcome) (max_over_time({selector}[30s]))"},
        )
    return {
        (r["metric"]["version"], r["metric"]["outcome"]): float(r["value"][1])
        for r in response.json()["data"]["result"]
    }


def spec(model: str, prometheus: str) -> ModelRolloutSpec:
    guards = [
        {"name": "null-predictions", "metric": "nullPredictionRate", "max": 0, "immediate": True},
        {"name": "accuracy-drop", "metric": "accuracy", "minRatioToStable": 0.95, "phases": ["canary"]},
    ]
    built = specs.rollout_spec(
        "v2",
        slices=SLICES,
        analysis=specs.analysis_with(*guards, url=prometheus, window="60s", minSamples=20),
    )
    built["model"]["name"] = model
    return ModelRolloutSpec.model_validate(built)


async def test_null_predictions_and_late_labels_are_judged_per_version_and_slice(
    cluster: Cluster, prometheus_url: str
) -> None:
    sandbox = cluster.require_sandbox()
    model, namespace = f"labels-{secrets.token_hex(3)}", f"it-{secrets.token_hex(3)}"
    configs = {
        version: ServingConfig(
            model_name=model,
            model_version=version,
            slices=tuple(Slice.model_validate(item) for item in SLICES),
            host="127.0.0.1",
            port=free_port(),
        )
        for version in ("v1", "v2")
    }
    servers = {version: serve(config) for version, config in configs.items()}
    urls = {version: await anext(server) for version, server in servers.items()}
    targets = [f"labels-{model}-{version}" for version in urls]
    for target, url in zip(targets, urls.values(), strict=True):
        sandbox.add_scrape_target(target, url.removeprefix("http://"), {"namespace": namespace})
    try:
        # Every series is scraped at 0 first, so what follows is an increase.
        await scraped(prometheus_url, f'model_feedback_total{{model="{model}"}}', series=2 * 3 * 2)
        feedback: list[dict[str, Any]] = []
        async with aiohttp.ClientSession() as session:
            for version, url in urls.items():
                for platform in ("ios", "android"):
                    for index in range(REQUESTS):
                        async with session.post(
                            f"{url}/predict", json={}, headers={"x-platform": platform}
                        ) as response:
                            answer = await response.json()
                        assert response.status == 200
                        # v1 is always right; v2 is right on every other ios request.
                        right = version == "v1" or index % 2 == 0
                        feedback.append({"request_id": answer["request_id"], "label": 1 if right else 0})
            async with session.post(f"{urls['v1']}/feedback", json=feedback) as response:
                assert (response.status, (await response.json())["accepted"]) == (200, len(feedback))

        client = PrometheusClient(prometheus_url)
        try:
            deadline = asyncio.get_running_loop().time() + 30
            while True:
                now = datetime.now(UTC)
                result = await analyze(
                    client,
                    spec(model, prometheus_url),
                    namespace,
                    "canary",
                    "v1",
                    "v2",
                    now - timedelta(minutes=5),
                    now,
                )
                verdicts = {(name, g.name): g for name, item in result.slices.items() for g in item.guards}
                done = verdicts[("android", "null-predictions")].verdict == "Fail" and (
                    verdicts[("ios", "accuracy-drop")].verdict == "Fail"
                )
                if done or asyncio.get_running_loop().time() > deadline:
                    break
                await asyncio.sleep(0.5)
        finally:
            await client.aclose()
        assert result.errors == []
        nulls = verdicts[("android", "null-predictions")]
        assert (nulls.verdict, nulls.canary, nulls.stable) == ("Fail", 1.0, 0.0)
        assert verdicts[("ios", "null-predictions")].verdict == "Pass"
        accuracy = verdicts[("ios", "accuracy-drop")]
        assert accuracy.verdict == "Fail", accuracy.reason
        assert accuracy.canary == pytest.approx(0.5, abs=0.05)
        assert accuracy.stable == pytest.approx(1.0)
        # increase() extrapolates past the samples it has (further when a loaded Prometheus misses scrapes):
        # never below the labels sent; the counters themselves hold every label exactly once.
        assert accuracy.samples.canary >= REQUESTS * 0.99
        counted = await counters(prometheus_url, f'model_feedback_total{{model="{model}",slice="ios"}}')
        assert counted == {("v1", "correct"): REQUESTS, ("v1", "incorrect"): 0, **HALF_RIGHT}
        # v2's android answers were null: never right, whatever the label says.
        assert verdicts[("android", "accuracy-drop")].canary == pytest.approx(0.0)
    finally:
        for target in targets:
            sandbox.remove_scrape_target(target)
        for server in servers.values():
            await server.aclose()
