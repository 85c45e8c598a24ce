"""What every tick shares: clients, metrics, and per-rollout memory that need not survive a restart."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from modelrollout.analysis.batch import QueryBatcher
from modelrollout.analysis.prometheus import PrometheusPool
from modelrollout.controller.metrics import OperatorMetrics
from modelrollout.controller.outbound import Outbound
from modelrollout.kube import KubeApi


@dataclass
class Runtime:
    """Clients and caches; nothing here decides anything (decisions live in the rollout's status)."""

    kube: KubeApi
    outbound: Outbound
    metrics: OperatorMetrics
    status_refresh: float = 60.0
    clock: Callable[[], datetime] | None = None
    """The time a tick decides at: the API server's (`kube.clock`), so every operator pod agrees on it;
    tests inject their own, so no test waits for a pause to pass."""
    prometheus: PrometheusPool = field(default_factory=PrometheusPool)
    batcher: QueryBatcher | None = None
    """Shares same-shaped queries across rollouts (None: one set of queries per rollout)."""
    queries_reported: int = 0
    last_status_write: dict[tuple[str, str], float] = field(default_factory=dict)
    background: set[asyncio.Task[Any]] = field(default_factory=set)
    notify_locks: dict[tuple[str, str], asyncio.Lock] = field(default_factory=dict)
    tick_locks: dict[tuple[str, str], asyncio.Lock] = field(default_factory=dict)
    """One tick of a rollout at a time, and none while its deletion returns the traffic."""

    def now(self) -> datetime:
        """The time this tick decides at."""
        return self.clock() if self.clock is not None else self.kube.clock.now()

    def notify_lock(self, namespace: str, name: str) -> asyncio.Lock:
        return self.notify_locks.setdefault((namespace, name), asyncio.Lock())

    def tick_lock(self, namespace: str, name: str) -> asyncio.Lock:
        return self.tick_locks.setdefault((namespace, name), asyncio.Lock())

    def spawn(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        """Runs work off the tick (notifications), keeping a reference so it is not garbage-collected."""
        task = asyncio.ensure_future(coroutine)
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    def forget(self, namespace: str, name: str) -> None:
        """Drops a deleted rollout's series and memory."""
        self.metrics.forget(namespace, name)
        self.last_status_write.pop((namespace, name), None)
        self.tick_locks.pop((namespace, name), None)

    async def close(self) -> None:
        for task in list(self.background):
            task.cancel()
        await self.prometheus.aclose()
        await self.outbound.aclose()
        await self.kube.close()
