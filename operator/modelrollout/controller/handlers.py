"""kopf wiring: one daemon per ModelRollout runs a tick every analysis interval, woken early by changes.

The daemon holds no state of its own: each tick re-reads the resource, so a restarted operator (or a
replacement pod) continues exactly where the status says.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from dataclasses import dataclass, field
from typing import Any

import kopf

from modelrollout.analysis.batch import QueryBatcher
from modelrollout.controller.deletion import release_traffic
from modelrollout.controller.metrics import OperatorMetrics
from modelrollout.controller.outbound import Outbound
from modelrollout.controller.runtime import Runtime
from modelrollout.controller.tick import RETRY_AFTER_ERROR, Reconciler
from modelrollout.errors import KubeError
from modelrollout.identity import FINALIZER, GROUP, PLURAL, VERSION
from modelrollout.kube import connect
from modelrollout.kube.lease import LeaseElector

log = logging.getLogger("modelrollout.operator")


STANDBY_POLL = 0.5
"""How often a standby's daemons look whether this replica now leads."""


@dataclass
class OperatorConfig:
    kubeconfig: str | None = None
    status_refresh: float = 60.0
    metrics: OperatorMetrics = field(default_factory=OperatorMetrics)
    namespaces: list[str] = field(default_factory=list)
    """Namespaces the operator watches (empty: all)."""
    leader_lease: tuple[str, str] | None = None
    """(namespace, name) of the Lease this replica must hold to reconcile; None: reconcile without one."""
    lease_duration: float = 15.0
    batch_window: float | None = None
    """Seconds a batched query waits for more rollouts; None: every rollout sends its own queries."""


@dataclass
class _State:
    config: OperatorConfig = field(default_factory=OperatorConfig)
    runtime: Runtime | None = None
    elector: LeaseElector | None = None
    wakeups: dict[tuple[str, str], asyncio.Event] = field(default_factory=dict)
    seen: dict[tuple[str, str], tuple[Any, ...]] = field(default_factory=dict)


STATE = _State()


def configure(config: OperatorConfig) -> None:
    STATE.config = config


@kopf.on.startup()
async def _startup(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.peering.standalone = True
    settings.persistence.finalizer = FINALIZER
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = 300
    kube = await connect(STATE.config.kubeconfig)
    kube.watch_deployments(STATE.config.namespaces)  # ticks read workloads from the watch, not a LIST each
    if STATE.config.leader_lease is not None:
        namespace, name = STATE.config.leader_lease
        identity = f"{socket.gethostname()}-{os.getpid()}"
        duration = STATE.config.lease_duration
        STATE.elector = LeaseElector(
            kube.api, namespace, name, identity, duration=duration, renew=duration / 3
        )
        STATE.elector.start()
    STATE.runtime = Runtime(
        kube=kube,
        outbound=Outbound(),
        metrics=STATE.config.metrics,
        status_refresh=STATE.config.status_refresh,
        batcher=QueryBatcher(window) if (window := STATE.config.batch_window) is not None else None,
    )


@kopf.on.login()
def _login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """The kubeconfig given on the command line (or $KUBECONFIG) when there is one, else the pod's account."""
    if STATE.config.kubeconfig or os.environ.get("KUBECONFIG"):
        return kopf.login_with_kubeconfig(**kwargs)
    return kopf.login_via_client(**kwargs)


@kopf.on.cleanup()
async def _cleanup(**_: Any) -> None:
    if STATE.elector is not None:
        await STATE.elector.stop()  # hands the Lease over at once instead of letting it expire
    if STATE.runtime is not None:
        await STATE.runtime.close()


@kopf.on.event(GROUP, VERSION, PLURAL)
def _changed(event: kopf.RawEvent, namespace: str | None, name: str, meta: kopf.Meta, **_: Any) -> None:
    """Wakes the rollout's daemon when its spec or its command annotations change (not on our status writes)."""
    key = (namespace or "", name)
    fingerprint = (meta.get("generation"), tuple(sorted((meta.get("annotations") or {}).items())))
    if STATE.seen.get(key) != fingerprint:
        STATE.seen[key] = fingerprint
        STATE.wakeups.setdefault(key, asyncio.Event()).set()
    if event.get("type") == "DELETED":
        STATE.seen.pop(key, None)
        # The daemon stopped before the finalizer went, so no tick will see the rollout gone: drop its series
        # (and its memory) here, or dashboards and alerts keep showing a rollout that no longer exists.
        if STATE.runtime is not None:
            STATE.runtime.forget(key[0], name)


@kopf.on.delete(GROUP, VERSION, PLURAL)
async def _deleted(body: kopf.Body, namespace: str | None, name: str, **_: Any) -> None:
    """Traffic back before garbage collection: the finalizer holds the rollout until this has succeeded."""
    runtime = STATE.runtime
    if runtime is None:
        raise kopf.TemporaryError("the operator is starting", delay=1)
    try:
        done = await release_traffic(runtime, dict(body))
    except KubeError as error:
        raise kopf.TemporaryError(f"cannot return the traffic yet: {error}", delay=2) from error
    log.info("%s/%s deleted: %s", namespace, name, done)


@kopf.daemon(GROUP, VERSION, PLURAL, cancellation_timeout=10.0)
async def rollout_daemon(stopped: kopf.DaemonStopped, namespace: str | None, name: str, **_: Any) -> None:
    namespace = namespace or ""
    key = (namespace, name)
    wake = STATE.wakeups.setdefault(key, asyncio.Event())
    due: float | None = None
    while not stopped:
        runtime = STATE.runtime
        if runtime is None:
            await asyncio.sleep(0.5)
            continue
        if STATE.elector is not None and not STATE.elector.leading:
            # A warm standby: watches and caches run, nothing is decided until this replica holds the Lease.
            due = None
            await _sleep(wake, stopped, STANDBY_POLL)
            continue
        started = time.monotonic()
        if due is not None and not wake.is_set():
            runtime.metrics.tick_lateness.observe(max(0.0, started - due))
        wake.clear()
        try:
            report = await Reconciler(runtime).tick(namespace, name)
            delay = report.next_in
        except Exception:  # one bad rollout must never take the operator, or the other rollouts, down
            log.exception("%s/%s: reconcile failed; retrying in %.0fs", namespace, name, RETRY_AFTER_ERROR)
            runtime.metrics.errors.labels(namespace, name, "Exception").inc()
            delay = RETRY_AFTER_ERROR
        due = started + delay
        await _sleep(wake, stopped, max(0.0, due - time.monotonic()))
    STATE.wakeups.pop(key, None)


async def _sleep(wake: asyncio.Event, stopped: kopf.DaemonStopped, seconds: float) -> None:
    """Sleeps until the next tick, a wake-up, or the daemon's stop — whichever comes first."""
    waiter = asyncio.ensure_future(wake.wait())
    stopper = asyncio.ensure_future(stopped.wait())
    try:
        await asyncio.wait({waiter, stopper}, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
        stopper.cancel()
