"""A watch-fed cache of the Deployments the operator owns, so ticks read workloads without a LIST each.

One LIST at start (and after the watch's resourceVersion expires), then a WATCH of Deployments carrying the
rollout label, in the watched namespaces (or cluster-wide). Until the first LIST has landed, and whenever the
watch is broken, `deployments()` answers None and the caller LISTs as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import aiohttp
from kubernetes.aio import watch
from kubernetes.aio.client.exceptions import ApiException

from modelrollout.identity import ROLLOUT_LABEL

log = logging.getLogger("modelrollout.kube")
WATCH_SECONDS = 300
RETRY_SECONDS = 1.0

Key = tuple[str, str]


class DeploymentInformer:
    """Deployments labelled with a rollout, by (namespace, rollout), kept current by a watch."""

    def __init__(self, apps: Any, api: Any, namespaces: list[str]) -> None:
        self.apps = apps
        self.api = api
        self.namespaces = namespaces
        self.items: dict[str, dict[Key, dict[str, Any]]] = {}
        """Per watched namespace ("" for all): (namespace, name) -> Deployment in wire form."""
        self.synced: set[str] = set()
        self.lists = 0
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        for namespace in self.namespaces or [""]:
            self._tasks.append(asyncio.ensure_future(self._run(namespace)))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()

    def deployments(self, namespace: str, rollout: str) -> list[dict[str, Any]] | None:
        """The rollout's Deployments from the cache, or None when the cache cannot answer for `namespace`."""
        scope = "" if "" in self.synced else namespace
        if scope not in self.synced:
            return None
        return [
            item
            for (ns, _), item in self.items.get(scope, {}).items()
            if ns == namespace
            and ((item.get("metadata") or {}).get("labels") or {}).get(ROLLOUT_LABEL) == rollout
        ]

    def _call(self, namespace: str) -> Any:
        if namespace:
            return self.apps.list_namespaced_deployment, (namespace,)
        return self.apps.list_deployment_for_all_namespaces, ()

    async def _list(self, namespace: str) -> str:
        call, args = self._call(namespace)
        found = await call(*args, label_selector=ROLLOUT_LABEL)
        self.lists += 1
        self.items[namespace] = {
            (item.metadata.namespace, item.metadata.name): dict(self.api.sanitize_for_serialization(item))
            for item in found.items
        }
        self.synced.add(namespace)
        return str(found.metadata.resource_version)

    async def _run(self, namespace: str) -> None:
        version: str | None = None
        while True:
            try:
                if version is None:
                    version = await self._list(namespace)
                version = await self._watch(namespace, version)
            except asyncio.CancelledError:
                raise
            except ApiException as error:
                if error.status == 410:  # our resourceVersion is too old: list again
                    version = None
                    continue
                log.warning(
                    "watch of Deployments in %s: %s; listing again", namespace or "all namespaces", error
                )
                version = None
                self.synced.discard(namespace)
                await asyncio.sleep(RETRY_SECONDS)
            except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as error:
                log.warning(
                    "watch of Deployments in %s broke: %r; listing again",
                    namespace or "all namespaces",
                    error,
                )
                version = None
                self.synced.discard(namespace)
                await asyncio.sleep(RETRY_SECONDS)

    async def _watch(self, namespace: str, version: str) -> str:
        """Applies watch events until the server ends the watch; returns the last resourceVersion seen."""
        call, args = self._call(namespace)
        stream: Any = watch.Watch()  # type: ignore[no-untyped-call]
        items = self.items.setdefault(namespace, {})
        try:
            async for event in stream.stream(
                call,
                *args,
                label_selector=ROLLOUT_LABEL,
                resource_version=version,
                timeout_seconds=WATCH_SECONDS,
                allow_watch_bookmarks=True,
            ):
                kind, obj = event.get("type"), event.get("raw_object") or {}
                meta = obj.get("metadata") or {}
                version = str(meta.get("resourceVersion") or version)
                if kind == "ERROR":
                    if obj.get("code") == 410:
                        raise ApiException(status=410, reason="Expired")
                    continue
                key = (str(meta.get("namespace")), str(meta.get("name")))
                if kind == "DELETED":
                    items.pop(key, None)
                elif kind in ("ADDED", "MODIFIED"):
                    items[key] = obj
        finally:
            await stream.close()
        return version
