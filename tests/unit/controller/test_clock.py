"""Every operator pod times decisions by the API server's clock, so a replacement pod on a node whose clock
is an hour off neither skips a pause nor stalls analysis (the planner's own guard against times from the
future is tested in tests/unit/plan/test_clock.py)."""

from __future__ import annotations

from datetime import datetime, timedelta

from modelrollout.kube.clock import ServerClock
from tests.support.controller import Harness

SLICES = ["ios", "android", "default"]
HOUR = 3600.0


def process_clock(h: Harness, skew: float) -> ServerClock:
    """A new process's view of time: its node's wall clock is `skew` seconds off, its monotonic clock has
    its own origin; what it learns from the API server's answers is the server's time."""
    return ServerClock(
        local=lambda: h.now.timestamp() + skew + 12345.0, wall=lambda: h.now.timestamp() + skew
    )


def when(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def test_a_replacement_pod_with_a_clock_an_hour_ahead_keeps_the_pause() -> None:
    h = Harness(server_clock=True)
    h.kube.clock = process_clock(h, skew=0.0)
    h.create()
    await h.run_until(lambda s: s.get("phase") == "Succeeded", "v1 stable")
    h.prometheus.healthy(("v1", "v2"), SLICES)
    h.set_version("v2")
    await h.run_until(lambda s: s.get("phase") == "Canary", "canary")
    began = when(h.status["stepSince"])

    h.kube.clock = process_clock(h, skew=+HOUR)  # the old pod is gone; its replacement's node runs ahead
    h.restart()
    await h.tick()
    status = h.status
    assert status["step"] == 1, "the 10s pause was skipped"
    assert when(status["lastAnalysis"]) <= h.now, "a time from this node's clock was recorded"
    await h.run_until(lambda s: s.get("step") == 2, "step 2", limit=5)
    assert when(h.status["stepSince"]) - began >= timedelta(seconds=10)


async def test_a_replacement_pod_with_a_clock_an_hour_behind_keeps_analysing() -> None:
    h = Harness(server_clock=True)
    h.kube.clock = process_clock(h, skew=0.0)
    h.create()
    await h.run_until(lambda s: s.get("phase") == "Succeeded", "v1 stable")
    h.prometheus.healthy(("v1", "v2"), SLICES)
    h.set_version("v2")
    await h.run_until(lambda s: s.get("phase") == "Canary", "canary")
    h.kube.clock = process_clock(h, skew=-HOUR)
    h.restart()
    queries = len(h.prometheus.queries)
    await h.tick()
    assert len(h.prometheus.queries) > queries, "analysis waited for this node's clock to catch up"
    await h.run_until(lambda s: s.get("stableVersion") == "v2", "v2 promoted", limit=20)
