"""Leader election on a coordination.k8s.io/v1 Lease: one replica reconciles, the others stay warm.

The holder renews every `renew` seconds; a standby takes the Lease over once `renewTime + duration` has
passed without a renewal. Every write carries the resourceVersion it read, so two candidates racing for an
expired Lease cannot both win (the loser gets 409 and reads again). A leader that has not renewed within
`duration` stops leading on its own, before any standby can take over, so two leaders never overlap by the
clock of either (clock skew between nodes aside, as for every Lease-based election).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from kubernetes.aio import client
from kubernetes.aio.client.exceptions import ApiException

log = logging.getLogger("modelrollout.lease")


@dataclass(frozen=True)
class LeaseView:
    """The parts of a Lease an election reads."""

    holder: str | None
    renewed: datetime | None
    duration: float
    transitions: int


def may_acquire(view: LeaseView | None, me: str, now: datetime) -> bool:
    """Whether `me` may write itself as the holder: the Lease is free, ours, or expired."""
    if view is None or not view.holder or view.holder == me:
        return True
    return view.renewed is None or now > view.renewed + timedelta(seconds=view.duration)


def _micro(now: datetime) -> str:
    return now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _view(lease: Any) -> LeaseView:
    spec = lease.spec
    renewed = spec.renew_time if spec is not None else None
    if renewed is not None and renewed.tzinfo is None:
        renewed = renewed.replace(tzinfo=UTC)
    return LeaseView(
        holder=spec.holder_identity if spec is not None else None,
        renewed=renewed,
        duration=float((spec.lease_duration_seconds if spec is not None else None) or 0),
        transitions=int((spec.lease_transitions if spec is not None else None) or 0),
    )


class LeaseElector:
    """Keeps trying to hold Lease `name` in `namespace` as `identity`; `leading` says whether it does now."""

    def __init__(
        self, api: Any, namespace: str, name: str, identity: str, duration: float = 15.0, renew: float = 5.0
    ) -> None:
        self.coordination: Any = client.CoordinationV1Api(api)
        self.namespace, self.name, self.identity = namespace, name, identity
        self.duration, self.renew = duration, renew
        self._held_until = 0.0  # monotonic deadline of our last successful renewal
        self._task: asyncio.Task[None] | None = None
        self.changed = asyncio.Event()
        """Set whenever `leading` flips (for the operator to wake its ticks)."""

    @property
    def leading(self) -> bool:
        return time.monotonic() < self._held_until

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self.leading:
            await self._release()

    async def _loop(self) -> None:
        while True:
            before = self.leading
            started = time.monotonic()
            try:
                if await self.try_acquire():
                    # Counted from before the request: the Lease may have been written at its start.
                    self._held_until = started + self.duration
            except (ApiException, OSError, TimeoutError) as error:
                log.warning("lease %s/%s: %s", self.namespace, self.name, error)
            if self.leading != before:
                log.warning("%s %s leadership of %s/%s", self.identity,
                            "took" if self.leading else "lost", self.namespace, self.name)  # fmt: skip
                self.changed.set()
            await asyncio.sleep(self.renew if self.leading else self.renew / 2)

    async def try_acquire(self) -> bool:
        """One round: read the Lease, and write ourselves as holder when we may. True when we hold it."""
        now = datetime.now(UTC)
        try:
            lease = await self.coordination.read_namespaced_lease(self.name, self.namespace)
        except ApiException as error:
            if error.status != 404:
                raise
            return await self._create(now)
        view = _view(lease)
        if not may_acquire(view, self.identity, now):
            return False
        lease.spec.holder_identity = self.identity
        lease.spec.lease_duration_seconds = int(self.duration)
        lease.spec.renew_time = _micro(now)
        if view.holder != self.identity:
            lease.spec.acquire_time = _micro(now)
            lease.spec.lease_transitions = view.transitions + 1
        try:
            await self.coordination.replace_namespaced_lease(self.name, self.namespace, lease)
        except ApiException as error:
            if error.status == 409:  # someone else wrote it since our read
                return False
            raise
        return True

    async def _create(self, now: datetime) -> bool:
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": int(self.duration),
                "acquireTime": _micro(now),
                "renewTime": _micro(now),
                "leaseTransitions": 0,
            },
        }
        try:
            await self.coordination.create_namespaced_lease(self.namespace, body)
        except ApiException as error:
            if error.status == 409:
                return False
            raise
        return True

    async def _release(self) -> None:
        """Hands the Lease over at once on a clean stop, so a standby need not wait for it to expire."""
        try:
            lease = await self.coordination.read_namespaced_lease(self.name, self.namespace)
            if lease.spec.holder_identity == self.identity:
                lease.spec.holder_identity = None
                await self.coordination.replace_namespaced_lease(self.name, self.namespace, lease)
        except (ApiException, OSError, TimeoutError) as error:
            log.warning("lease %s/%s: release failed: %s", self.namespace, self.name, error)
        self._held_until = 0.0
