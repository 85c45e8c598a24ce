"""The serving library's metrics as the sandbox's real Prometheus scrapes and queries them."""

from __future__ import annotations

import asyncio
import math
import secrets
from collections.abc import Mapping
from typing import Any

import aiohttp
import httpx
import pytest
from aiohttp import web

from modelrollout.api.spec import Slice
from modelrollout.sandbox.processes import free_port
from modelrollout.serving import PredictionError, RequestContext, ServingConfig, create_app
from tests.conftest import Cluster

pytestmark = pytest.mark.integration

SLICES = (
    Slice.model_validate({"name": "ios", "match": {"headers": {"x-platform": {"exact": "ios"}}}}),
    Slice.model_validate({"name": "android", "match": {"headers": {"x-platform": {"exact": "android"}}}}),
)


class ScriptedModel:
    async def load(self) -> None:
        return None

    async def warmup(self) -> None:
        return None

    async def predict(self, features: Mapping[str, Any], context: RequestContext) -> float:
        await asyncio.sleep(0.004 if context.slice == "ios" else 0.04)
        if features.get("fail"):
            raise PredictionError("scripted failure")
        return 0.1 if context.slice == "ios" else 0.8


async def query(prometheus: str, expr: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(timeout=5.0) as client:
        response = await client.get(f"{prometheus}/api/v1/query", params={"query": expr})
    response.raise_for_status()
    body = response.json()
    assert body["status"] == "success", body
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


async def test_prometheus_scrapes_per_slice_metrics(cluster: Cluster, prometheus_url: str) -> None:
    sandbox = cluster.require_sandbox()
    model_name = f"serving-it-{secrets.token_hex(3)}"
    config = ServingConfig(
        model_name=model_name, model_version="v7", slices=SLICES, host="127.0.0.1", port=free_port()
    )
    runner = web.AppRunner(create_app(ScriptedModel(), config))
    await runner.setup()
    await web.TCPSite(runner, config.host, config.port).start()
    target = f"test-{model_name}"
    sandbox.add_scrape_target(target, f"127.0.0.1:{config.port}")
    try:
        url = f"http://127.0.0.1:{config.port}"
        async with aiohttp.ClientSession() as session:
            for _ in range(100):  # the model loads in the background
                async with session.get(f"{url}/ready") as response:
                    if response.status == 200:
                        break
                await asyncio.sleep(0.02)
            plan = [("ios", {}, 30), ("android", {}, 20), ("android", {"fail": True}, 5), (None, {}, 7)]
            for platform, body, count in plan:
                headers = {"x-platform": platform} if platform else {}
                for _ in range(count):
                    async with session.post(f"{url}/predict", json=body, headers=headers) as response:
                        await response.read()

        expected = {("ios", "200"): 30, ("android", "200"): 20, ("android", "500"): 5, ("default", "200"): 7}
        counts: dict[tuple[str, str], float] = {}
        deadline = asyncio.get_running_loop().time() + 30
        while asyncio.get_running_loop().time() < deadline:
            result = await query(
                prometheus_url, f'sum by (slice, code) (model_requests_total{{model="{model_name}"}})'
            )
            counts = {(r["metric"]["slice"], r["metric"]["code"]): float(r["value"][1]) for r in result}
            if {k: v for k, v in counts.items() if v} == expected:
                break
            await asyncio.sleep(0.5)
        assert {k: v for k, v in counts.items() if v} == expected
        # Series for every slice exist from the start, at 0.
        assert counts[("ios", "500")] == 0

        series = await query(prometheus_url, f'model_requests_total{{model="{model_name}"}}')
        for entry in series:
            labels = set(entry["metric"]) - {"__name__", "instance", "job"}
            assert labels == {"model", "version", "slice", "code"}  # no exported_* renames
            assert entry["metric"]["version"] == "v7"

        latency = await query(
            prometheus_url,
            "histogram_quantile(0.5, sum by (slice, le) "
            f'(model_request_duration_seconds_bucket{{model="{model_name}"}}))',
        )
        by_slice = {r["metric"]["slice"]: float(r["value"][1]) for r in latency}
        assert 0.003 < by_slice["ios"] < 0.02
        assert 0.03 < by_slice["android"] < 0.1

        scores = await query(
            prometheus_url, f'sum by (slice, le) (model_prediction_score_bucket{{model="{model_name}"}})'
        )
        ios = {
            float(r["metric"]["le"]): float(r["value"][1]) for r in scores if r["metric"]["slice"] == "ios"
        }
        assert len(ios) == 21
        assert math.isinf(max(ios))
        assert ios[0.05] == 0
        assert ios[0.1] == 30  # all ios scores are 0.1
        android = {
            float(r["metric"]["le"]): float(r["value"][1])
            for r in scores
            if r["metric"]["slice"] == "android"
        }
        assert android[0.75] == 0
        assert android[0.8] == 20  # failed requests have no score
    finally:
        sandbox.remove_scrape_target(target)
        await runner.cleanup()
