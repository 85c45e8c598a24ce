"""Batched analysis: rollouts that read the same Prometheus with the same query shape share one query.

The first tick asking for a shape opens a batch; ticks asking for the same shape on the same client (the
same Prometheus URL, timeout and credentials: the pool's key) within `window` seconds join it. Then one
query selects every member's namespace, model and versions, grouped by them as well as by slice and version,
and each member gets the samples of its own namespace and model. A failed or slow batch fails every member
with the same PrometheusError, which each rollout's judges turn into Inconclusive as an unbatched query would.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime

from modelrollout.analysis.prometheus import PrometheusClient
from modelrollout.analysis.queries import BATCH_MATCHERS, Query, batch_matchers
from modelrollout.analysis.results import Sample

DEFAULT_WINDOW = 0.5
"""Seconds a batch waits for more members: the most a tick's analysis is delayed by batching."""
INTERVAL_SHARE = 0.02
"""A batch waits at most this share of its first member's analysis interval (20 ms at a 1 s interval)."""

Index = dict[tuple[str, str], list[Sample]]


@dataclass
class _Batch:
    query: Query
    scopes: set[tuple[str, str, str]] = field(default_factory=set)
    at: datetime | None = None
    done: asyncio.Future[Index] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class QueryBatcher:
    """Coalesces the same-shaped queries of many rollouts into one per `window`."""

    def __init__(self, window: float = DEFAULT_WINDOW) -> None:
        self.window = window
        self.open: dict[tuple[PrometheusClient, str], _Batch] = {}
        self.batches = 0
        self._tasks: set[asyncio.Task[None]] = set()
        """Batched queries sent (for tests and benchmarks)."""

    async def query(
        self, client: PrometheusClient, query: Query, at: datetime, interval: float | None = None
    ) -> list[Sample]:
        """This rollout's samples of `query` evaluated at (or within `window` after) `at`.

        A batch opened by this call waits `window`, or INTERVAL_SHARE of `interval` when that is shorter.
        """
        assert query.shape is not None, "custom queries are not batched"
        key = (client, query.shape)
        batch = self.open.get(key)
        if batch is None:
            batch = self.open[key] = _Batch(query)
            wait = self.window if interval is None else min(self.window, INTERVAL_SHARE * interval)
            asyncio.get_running_loop().call_later(wait, self._send, key)
        batch.scopes.add(query.scope)
        batch.at = at if batch.at is None else max(batch.at, at)
        index = await asyncio.shield(batch.done)
        return index.get(query.scope[:2], [])

    def _send(self, key: tuple[PrometheusClient, str]) -> None:
        batch = self.open.pop(key)
        task = asyncio.ensure_future(self._run(key[0], batch))
        self._tasks.add(task)  # referenced until it has answered, or it may be garbage-collected
        task.add_done_callback(self._tasks.discard)

    async def _run(self, client: PrometheusClient, batch: _Batch) -> None:
        shape, labels = batch.query.shape, batch.query.scope_labels
        assert shape is not None
        self.batches += 1
        try:
            samples = await client.query(
                shape.replace(BATCH_MATCHERS, batch_matchers(labels, sorted(batch.scopes))), at=batch.at
            )
        except Exception as error:  # every member judges the failure, as it would its own query's
            batch.done.set_exception(error)
            return
        index: Index = {}
        for sample in samples:
            index.setdefault((sample.labels.get(labels[0], ""), sample.labels.get(labels[1], "")), []).append(
                sample
            )
        batch.done.set_result(index)
