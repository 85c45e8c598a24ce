"""The scale table: N rollouts x 8 slices x 4 guards at a 30 s interval on one operator replica.

For each N (default 100, 300, 1,000) a fresh sandbox: kwok runs the pods, one synthetic source
(`modelrollout.sandbox.synthetic`) serves every rollout's per-slice, per-version series to the sandbox's
Prometheus. The rollouts are deployed at v1, moved to v2 and held at a 10% canary step for an hour. Over a
steady window the operator's own /metrics give tick lateness, Prometheus queries and API requests per
interval (batching off, then on: the operator is restarted between the two, the rollouts stay); RSS comes
from /proc. Then chosen rollouts regress one after another across an interval, and detection latency is
the time from the first instant the data in Prometheus shows the breach (the guard's query replayed at
`time=` steps and judged by the operator's judge) to the rollback write (seen by a poller on the routes).
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import yaml
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console

from bench.common import percentile
from modelrollout.analysis.prometheus import PrometheusClient
from modelrollout.analysis.run import analyze
from modelrollout.api.crd import render as render_crd
from modelrollout.api.spec import ModelRolloutSpec
from modelrollout.errors import KubeError
from modelrollout.kube import Kube
from modelrollout.sandbox.cluster import Sandbox
from modelrollout.sandbox.operator_process import OperatorProcess
from modelrollout.sandbox.processes import free_port, http_ok, start, wait_ready
from modelrollout.sandbox.synthetic import model_name
from modelrollout.traffic.istio import observed_weights

NAMESPACE = "bench-scale"
INTERVAL = 30.0
SLICES = 8
REGRESSING = 5
REPLAY_STEP = 0.25
GUARDS = [
    {"name": "error-rate", "metric": "errorRate", "max": 0.05, "immediate": True},
    {"name": "error-ratio", "metric": "errorRate", "maxRatioToStable": 3.0},
    {"name": "p99", "metric": "latencyP99", "maxRatioToStable": 1.5},
    {"name": "p50", "metric": "latencyP50", "maxRatioToStable": 1.5},
]


def rollout(index: int, version: str, prometheus: str) -> dict[str, Any]:
    name = model_name(index)
    return {
        "apiVersion": "modelrollout.io/v1alpha1",
        "kind": "ModelRollout",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "model": {"name": name, "version": version, "uri": f"s3://m/{version}"},
            "template": {"spec": {"containers": [{"name": "server", "image": "example.invalid/s:1"}]}},
            "replicas": 1,
            "traffic": {"istio": {"host": name, "virtualService": name}},
            "slices": [
                {"name": f"s{i}", "match": {"headers": {"x-segment": {"exact": str(i)}}}}
                for i in range(SLICES)
            ],
            "strategy": {"canary": {"steps": [{"weight": 10, "pause": "1h"}]}},
            "analysis": {"interval": f"{INTERVAL:g}s", "prometheus": {"url": prometheus}, "guards": GUARDS},
        },
    }


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def scrape(address: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """The operator's /metrics as sample name -> sorted labels -> value."""
    for attempt in range(3):  # a saturated operator answers /metrics slowly
        try:
            text = httpx.get(f"http://{address}/metrics", timeout=60).text
            break
        except httpx.HTTPError:
            if attempt == 2:
                raise
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def _delta(
    before: dict[str, Any], after: dict[str, Any], name: str
) -> dict[tuple[tuple[str, str], ...], float]:
    old, new = before.get(name, {}), after.get(name, {})
    return {labels: value - old.get(labels, 0.0) for labels, value in new.items()}


def lateness_quantile(before: dict[str, Any], after: dict[str, Any], q: float) -> float:
    """Upper bound of the histogram bucket holding the q-quantile of tick lateness in the window."""
    buckets = _delta(before, after, "modelrollout_tick_lateness_seconds_bucket")
    cumulative = sorted((float(dict(labels)["le"]), count) for labels, count in buckets.items())
    total = cumulative[-1][1] if cumulative else 0.0
    for bound, count in cumulative:
        if total and count >= q * total:
            return bound
    return float("nan")


async def _phases(kube: Kube) -> list[str | None]:
    try:
        return [(r.get("status") or {}).get("phase") for r in await kube.list_rollouts(NAMESPACE)]
    except KubeError:  # a loaded API server drops a connection now and then: ask again next time
        return []


async def _wait_phase(kube: Kube, want: str, count: int, console: Console, within: float) -> None:
    deadline = time.monotonic() + within
    phases: list[str | None] = []
    while time.monotonic() < deadline:
        phases = await _phases(kube)
        if phases.count(want) == count:
            console.print(f"    {count}/{count} rollouts {want}")
            return
        await asyncio.sleep(5)
    raise RuntimeError(f"only {phases.count(want)}/{count} rollouts reached {want} in {within:.0f}s")


def _apply(sandbox: Sandbox, manifests: Iterable[dict[str, Any]]) -> None:
    items = list(manifests)
    for start_at in range(0, len(items), 200):
        sandbox.kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(items[start_at : start_at + 200]))


async def _steady(operator: OperatorProcess, seconds: float) -> dict[str, Any]:
    """Counters over a window of steady canary analysis, per interval."""
    assert operator.process is not None
    before = await asyncio.to_thread(scrape, operator.metrics_address)
    rss = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        await asyncio.sleep(5)
        rss.append(_rss_mib(operator.process.pid))
    after = await asyncio.to_thread(scrape, operator.metrics_address)
    per_interval = INTERVAL / seconds
    requests = _delta(before, after, "modelrollout_api_requests_total")
    by_verb: dict[str, float] = {}
    for labels, count in requests.items():
        key = f"{dict(labels)['verb']} {dict(labels)['resource']}"
        by_verb[key] = by_verb.get(key, 0.0) + count * per_interval
    writes = sum(_delta(before, after, "modelrollout_api_writes_total").values())
    return {
        "queries_per_interval": sum(_delta(before, after, "modelrollout_prometheus_requests_total").values())
        * per_interval,
        "api_requests_per_interval": {k: round(v, 1) for k, v in sorted(by_verb.items()) if v},
        "lists_per_interval": sum(v for k, v in by_verb.items() if k.startswith("list ")),
        "writes_per_interval": writes * per_interval,
        "tick_lateness_p99_le": lateness_quantile(before, after, 0.99),
        "tick_lateness_p50_le": lateness_quantile(before, after, 0.5),
        "ticks": sum(_delta(before, after, "modelrollout_tick_lateness_seconds_count").values()),
        "rss_median_mib": statistics.median(rss),
        "rss_max_mib": max(rss),
    }


async def _written_at(kube: Kube, name: str, deadline: float) -> float | None:
    """Wall time at which the routes of `name` first send nothing to the candidate."""
    while time.monotonic() < deadline:
        try:
            live = await kube.get_virtual_service(NAMESPACE, name)
        except KubeError:
            live = None
        weights = observed_weights(((live or {}).get("spec") or {}).get("http") or [])
        if live is not None and not any(weights.values()):
            return time.time()
        await asyncio.sleep(0.1)
    return None


async def _first_breach(prometheus: str, index: int, flipped: float, written: float) -> float | None:
    spec = ModelRolloutSpec.model_validate(rollout(index, "v2", prometheus)["spec"])
    client = PrometheusClient(prometheus, timeout=10)
    try:
        at = datetime.fromtimestamp(flipped, UTC)
        end = datetime.fromtimestamp(written, UTC)
        while at <= end:
            judged = await analyze(client, spec, NAMESPACE, "canary", "v1", "v2", at - timedelta(hours=1), at)
            if any(v.verdict == "Fail" for v in judged.slices.values()):
                return at.timestamp()
            at += timedelta(seconds=REPLAY_STEP)
    finally:
        await client.aclose()
    return None


async def _detection(sandbox: Sandbox, kube: Kube, source: str, count: int, console: Console) -> list[float]:
    assert sandbox.state is not None
    chosen = [round(i * count / REGRESSING) for i in range(REGRESSING)]
    deadline = time.monotonic() + 4 * INTERVAL  # flips spread over one interval, then one interval + slack
    pollers = {i: asyncio.create_task(_written_at(kube, model_name(i), deadline)) for i in chosen}
    flipped: dict[int, float] = {}
    async with httpx.AsyncClient(timeout=5) as http:
        for n, index in enumerate(chosen):
            # Spread across one interval, so breaches land at every phase of the rollouts' ticks.
            await asyncio.sleep(INTERVAL / REGRESSING if n else 0)
            answer = await http.post(f"http://{source}/regress", params={"model": model_name(index)})
            flipped[index] = float(answer.json()["since"])
    latencies = []
    for index in chosen:
        written = await pollers[index]
        if written is None:
            console.print(f"    {model_name(index)}: no rollback written in time")
            continue
        breach = await _first_breach(sandbox.state.prometheus, index, flipped[index], written)
        if breach is None:
            console.print(f"    {model_name(index)}: replay never showed the breach before the write")
            continue
        latencies.append(written - breach)
    return latencies


async def one_scale(root: Path, count: int, console: Console, window: float) -> dict[str, Any]:
    sandbox = Sandbox(root / f"scale-{count}", log=lambda _: None)
    await asyncio.to_thread(sandbox.up)
    state = sandbox.state
    assert state is not None
    port = free_port()
    source = start(
        "synthetic",
        [
            sys.executable, "-m", "modelrollout.sandbox.synthetic", f"--port={port}", f"--namespace={NAMESPACE}",
            f"--rollouts={count}", f"--slices={SLICES}",
        ],
        sandbox.logs / "synthetic.log",
    )  # fmt: skip
    operators: list[OperatorProcess] = []
    kube = await Kube.connect(state.kubeconfig)
    result: dict[str, Any] = {
        "rollouts": count,
        "slices": SLICES,
        "guards": len(GUARDS),
        "interval": INTERVAL,
    }
    try:
        wait_ready(source, http_ok(f"http://127.0.0.1:{port}/metrics"), 30)
        sandbox.add_scrape_target("synthetic", f"127.0.0.1:{port}", load=True)
        sandbox.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", stdin=render_crd())
        sandbox.kubectl("create", "namespace", NAMESPACE)

        def operator(batching: bool) -> OperatorProcess:
            process = OperatorProcess(
                Path(state.kubeconfig),
                NAMESPACE,
                sandbox.logs,
                extra_args=(f"--batch-queries={'on' if batching else 'off'}",) if BATCH_FLAG else (),
            )
            process.start(timeout=120)
            operators.append(process)
            return process

        first = await asyncio.to_thread(operator, False)
        assert first.process is not None
        result["rss_idle_mib"] = _rss_mib(first.process.pid)
        started = time.monotonic()
        _apply(sandbox, (rollout(i, "v1", state.prometheus) for i in range(count)))
        await _wait_phase(kube, "Succeeded", count, console, within=600 + count)
        _apply(sandbox, (rollout(i, "v2", state.prometheus) for i in range(count)))
        await _wait_phase(kube, "Canary", count, console, within=600 + count)
        result["setup_seconds"] = time.monotonic() - started
        await asyncio.sleep(INTERVAL)  # every rollout has analysed at least once
        result["batching_off"] = await _steady(first, window)
        first.stop()
        if BATCH_FLAG:
            second = await asyncio.to_thread(operator, True)
            await asyncio.sleep(INTERVAL)
            result["batching_on"] = await _steady(second, window)
        latencies = await _detection(sandbox, kube, f"127.0.0.1:{port}", count, console)
        result["detection_seconds"] = latencies
    finally:
        await kube.close()
        for process in operators:
            process.stop()
        source.stop()
        await asyncio.to_thread(sandbox.down)
    return result


BATCH_FLAG = True
"""Whether this operator has --batch-queries (set when batching lands)."""


def row(result: dict[str, Any]) -> str:
    steady = result.get("batching_on") or result["batching_off"]
    latencies = result["detection_seconds"]
    detection = (
        f"median {statistics.median(latencies):.2f} s, p95 {percentile(latencies, 0.95):.2f} s (n={len(latencies)})"
        if latencies
        else "n/a"
    )
    queries = f"{result['batching_off']['queries_per_interval']:.0f}"
    if "batching_on" in result:
        queries += f" off / {result['batching_on']['queries_per_interval']:.0f} on"
    return (
        f"| {result['rollouts']} | <= {steady['tick_lateness_p99_le']:g} s | {steady['rss_median_mib']:.0f} MiB "
        f"(max {steady['rss_max_mib']:.0f}) | {queries} | {steady['lists_per_interval']:.0f} LIST, "
        f"{steady['writes_per_interval']:.1f} writes (of {sum(steady['api_requests_per_interval'].values()):.0f}) "
        f"| {detection} |"
    )


async def run(
    root: Path, scales: list[int], console: Console, window: float = 2 * INTERVAL
) -> dict[str, Any]:
    results = []
    for count in scales:
        console.print(
            f"  [bold]{count} rollouts[/bold] x {SLICES} slices x {len(GUARDS)} guards, {INTERVAL:g}s interval"
        )
        result = await one_scale(root, count, console, window)
        results.append(result)
        console.print(f"    {result}")
    console.print(
        "| rollouts | tick lateness p99 | operator RSS | Prometheus queries per interval | "
        "API requests per interval (steady) | detection latency |"
    )
    console.print("|---|---|---|---|---|---|")
    for result in results:
        console.print(row(result))
    return {"scales": results}
