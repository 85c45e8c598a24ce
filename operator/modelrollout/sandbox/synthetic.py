"""A synthetic metrics source for load tests: one process exposing every rollout's per-slice, per-version series.

`python -m modelrollout.sandbox.synthetic --port N --namespace NS --rollouts 1000 --slices 8` serves
`/metrics` in Prometheus' text format with the `modelrollout` profile's series (`model_requests_total` by
code, `model_request_duration_seconds_bucket`) for models `model-0000`.. at versions v1 and v2, so the
sandbox's Prometheus scrapes one target instead of a model server per version. Counters grow at a fixed
rate from the start; every version is healthy (0.5% errors, the same latency) until `POST /regress?model=M`
makes M's candidate (v2) fail 30% of its requests from that moment on. It listens on loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from aiohttp import web

VERSIONS = ("v1", "v2")
CANDIDATE = "v2"
RATE = 20.0
"""Requests per second of each (model, slice, version)."""
HEALTHY_ERRORS = 0.005
REGRESSED_ERRORS = 0.3
# Cumulative share of requests at or below each bound: the same for every series, so ratios to stable are 1.
LATENCY_SHARES = ((0.05, 0.5), (0.1, 0.8), (0.25, 0.95), (0.5, 0.99), (1.0, 0.999), (float("inf"), 1.0))


def model_name(index: int) -> str:
    return f"model-{index:04d}"


@dataclass
class SyntheticSource:
    """The series of `rollouts` models x `slices` slices x two versions, as a function of time."""

    namespace: str
    rollouts: int
    slices: int
    started: float = field(default_factory=time.time)
    regressed: dict[str, float] = field(default_factory=dict)
    """Model -> wall time from which its candidate fails REGRESSED_ERRORS of its requests."""

    @property
    def slice_names(self) -> list[str]:
        """s0.. and `default`, which takes the requests no slice matches."""
        return [*(f"s{i}" for i in range(self.slices)), "default"]

    def regress(self, model: str, at: float | None = None) -> None:
        self.regressed.setdefault(model, time.time() if at is None else at)

    def _errors(self, model: str, version: str, total: float, now: float) -> float:
        errors = HEALTHY_ERRORS * total
        since = self.regressed.get(model)
        if version == CANDIDATE and since is not None and now > since:
            errors += (REGRESSED_ERRORS - HEALTHY_ERRORS) * RATE * (now - since)
        return errors

    def render(self, now: float | None = None) -> str:
        """The exposition at `now` (seconds since the epoch)."""
        now = time.time() if now is None else now
        total = RATE * max(0.0, now - self.started)
        buckets = [
            ("+Inf" if bound == float("inf") else f"{bound:g}", share * total)
            for bound, share in LATENCY_SHARES
        ]
        lines = [
            "# TYPE model_requests_total counter",
            "# TYPE model_request_duration_seconds histogram",
        ]
        for index in range(self.rollouts):
            model = model_name(index)
            for version in VERSIONS:
                errors = self._errors(model, version, total, now)
                for slice_name in self.slice_names:
                    labels = f'namespace="{self.namespace}",model="{model}",version="{version}",slice="{slice_name}"'
                    lines.append(f'model_requests_total{{{labels},code="200"}} {total:.3f}')
                    lines.append(f'model_requests_total{{{labels},code="500"}} {errors:.3f}')
                    for le, count in buckets:
                        lines.append(
                            f'model_request_duration_seconds_bucket{{{labels},le="{le}"}} {count:.3f}'
                        )
        lines.append("")
        return "\n".join(lines)


def app(source: SyntheticSource) -> web.Application:
    async def metrics(_: web.Request) -> web.Response:
        text = await asyncio.to_thread(source.render)
        return web.Response(text=text, content_type="text/plain")

    async def regress(request: web.Request) -> web.Response:
        model = request.query.get("model", "")
        if not model:
            raise web.HTTPBadRequest(text="regress needs ?model=NAME")
        source.regress(model)
        return web.json_response({"model": model, "since": source.regressed[model]})

    application = web.Application()
    application.router.add_get("/metrics", metrics)
    application.router.add_post("/regress", regress)
    return application


async def _serve(source: SyntheticSource, host: str, port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    runner = web.AppRunner(app(source))
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="synthetic", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--rollouts", type=int, required=True)
    parser.add_argument("--slices", type=int, default=8)
    args = parser.parse_args(argv)
    if not ipaddress.ip_address(args.host).is_loopback:
        print(f"--host {args.host}: the synthetic source listens on loopback addresses only", file=sys.stderr)
        return 2
    asyncio.run(_serve(SyntheticSource(args.namespace, args.rollouts, args.slices), args.host, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
