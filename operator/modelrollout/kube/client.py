"""The real Kubernetes client (kubernetes.aio): the only module that imports `kubernetes`.

Objects travel as plain dicts in their wire form, so the pure core never sees client model classes.
Every failure — an API error, a refused connection, a timeout, a bad kubeconfig — leaves as a `KubeError`,
so no caller needs to know the client library or its HTTP transport. Every write is counted by kind.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections import Counter
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
from kubernetes.aio import client, config
from kubernetes.aio.client.exceptions import ApiException
from kubernetes.aio.config import ConfigException

from modelrollout.errors import KubeError
from modelrollout.identity import (
    API_VERSION,
    EVENT_COMPONENT,
    EVENT_SOURCE,
    FIELD_MANAGER,
    GATEWAY_GROUP,
    GATEWAY_VERSION,
    GROUP,
    HTTP_ROUTE_KIND,
    HTTP_ROUTES,
    ISTIO_GROUP,
    ISTIO_VERSION,
    KIND,
    PLURAL,
    ROLLOUT_LABEL,
    VERSION,
    VERSION_LABEL,
    VIRTUAL_SERVICE_KIND,
    VIRTUAL_SERVICES,
)
from modelrollout.kube.clock import ServerClock
from modelrollout.kube.informer import DeploymentInformer

_config: Any = config
APPLY = "application/apply-patch+yaml"
MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
T = TypeVar("T")


@dataclass(frozen=True)
class _RouteKind:
    """A kind of object the operator writes routes into."""

    kind: str
    group: str
    version: str
    plural: str


_VIRTUAL_SERVICE = _RouteKind(VIRTUAL_SERVICE_KIND, ISTIO_GROUP, ISTIO_VERSION, VIRTUAL_SERVICES)
_HTTP_ROUTE = _RouteKind(HTTP_ROUTE_KIND, GATEWAY_GROUP, GATEWAY_VERSION, HTTP_ROUTES)


def _error(action: str, error: BaseException) -> KubeError:
    if isinstance(error, ApiException):
        message = error.reason or "error"
        with contextlib.suppress(ValueError, AttributeError):
            message = json.loads(error.body or "{}").get("message", message)
        return KubeError(action, int(error.status or 0), str(message))
    if isinstance(error, asyncio.TimeoutError):
        return KubeError(action, 0, "the API server did not answer in time")
    return KubeError(action, 0, f"{type(error).__name__}: {error}")


async def _call(action: str, call: Awaitable[T], *, missing: T | None = None, missing_ok: bool = False) -> T:
    """Awaits one API call; any failure becomes a KubeError naming `action` (404 gives `missing` if allowed)."""
    try:
        return await call
    except ApiException as error:
        if missing_ok and error.status == 404:
            return missing  # type: ignore[return-value]
        raise _error(action, error) from None
    except (TimeoutError, aiohttp.ClientError, OSError) as error:
        raise _error(action, error) from None


def _has_default_kubeconfig() -> bool:
    return Path("~/.kube/config").expanduser().exists()


def default_namespace(kubeconfig: str | None = None, context: str | None = None) -> str:
    """The namespace kubectl would use: the context's, the pod's own when in-cluster, else "default"."""
    path = kubeconfig or os.environ.get("KUBECONFIG")
    if path or _has_default_kubeconfig():
        try:
            contexts, current = _config.list_kube_config_contexts(config_file=path)
        except (ConfigException, OSError, ValueError, TypeError, KeyError) as error:
            raise KubeError("read kubeconfig", 0, f"{type(error).__name__}: {error}") from None
        chosen = next((c for c in contexts if c.get("name") == context), None) if context else current
        if context and chosen is None:
            raise KubeError("read kubeconfig", 0, f"context {context!r} not found")
        namespace = ((chosen or {}).get("context") or {}).get("namespace")
        return str(namespace) if namespace else "default"
    if SERVICE_ACCOUNT_NAMESPACE.is_file():
        return SERVICE_ACCOUNT_NAMESPACE.read_text().strip() or "default"
    return "default"


async def connect(kubeconfig: str | None = None, context: str | None = None) -> Kube:
    """A client from a kubeconfig (argument, $KUBECONFIG or ~/.kube/config), else the pod's service account."""
    configuration = client.Configuration()
    path = kubeconfig or os.environ.get("KUBECONFIG")
    try:
        if path or _has_default_kubeconfig():
            await _config.load_kube_config(
                config_file=path, context=context, client_configuration=configuration
            )
        else:
            _config.load_incluster_config(client_configuration=configuration)
    except (ConfigException, OSError, ValueError, TypeError, KeyError) as error:
        raise KubeError("load Kubernetes credentials", 0, f"{type(error).__name__}: {error}") from None
    return Kube(client.ApiClient(configuration))


class Kube:
    """Thin async wrapper over the API calls the operator, the sandbox and the kubectl plugin make."""

    def __init__(self, api: client.ApiClient) -> None:
        # The generated client is only partly typed; dict bodies and answers cross it as Any.
        self.api: Any = api
        self.core: Any = client.CoreV1Api(api)
        self.apps: Any = client.AppsV1Api(api)
        self.custom: Any = client.CustomObjectsApi(api)
        self.writes: Counter[str] = Counter()
        self.requests: Counter[str] = Counter()
        self.informer: DeploymentInformer | None = None
        self.clock = ServerClock()
        self._time_answers()

    def _time_answers(self) -> None:
        """Feeds every answer's Date header, with when it was asked and read, to the server clock."""
        rest = self.api.rest_client
        request = rest.request
        clock = self.clock

        async def timed(*args: Any, **kwargs: Any) -> Any:
            sent = clock.local()
            response = await request(*args, **kwargs)
            clock.observe_date(response.headers.get("Date"), sent, clock.local())
            return response

        rest.request = timed

    def watch_deployments(self, namespaces: list[str]) -> None:
        """Serves list_deployments from a watch from now on (all namespaces when `namespaces` is empty)."""
        if self.informer is None:
            self.informer = DeploymentInformer(self.apps, self.api, namespaces)
            self.informer.start()

    @classmethod
    async def connect(cls, kubeconfig: str | None = None, context: str | None = None) -> Kube:
        return await connect(kubeconfig, context)

    async def close(self) -> None:
        if self.informer is not None:
            await self.informer.stop()
        await self.api.close()

    def _plain(self, obj: Any) -> dict[str, Any]:
        return dict(self.api.sanitize_for_serialization(obj))

    # ModelRollouts ---------------------------------------------------------------------------------------
    async def get_rollout(self, namespace: str, name: str) -> dict[str, Any] | None:
        self.requests["get modelrollout"] += 1
        found = await _call(
            f"read {KIND} {namespace}/{name}",
            self.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name),
            missing_ok=True,
        )
        return dict(found) if found is not None else None

    async def list_rollouts(self, namespace: str | None) -> list[dict[str, Any]]:
        self.requests["list modelrollout"] += 1
        if namespace:
            call = self.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)
        else:
            call = self.custom.list_cluster_custom_object(GROUP, VERSION, PLURAL)
        found = await _call(f"list {KIND}s", call)
        return list(found.get("items", []))

    async def patch_rollout(self, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        """Merge-patches metadata or spec (commands from the kubectl plugin)."""
        self.requests["patch modelrollout"] += 1
        result = await _call(
            f"patch {KIND} {namespace}/{name}",
            self.custom.patch_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, name, patch, _content_type=MERGE
            ),
        )
        self.writes["modelrollout"] += 1
        return dict(result)

    async def patch_rollout_status(
        self, namespace: str, name: str, status: dict[str, Any], resource_version: str | None = None
    ) -> str:
        """Replaces the whole status (a JSON patch `add` of /status), so fields the planner cleared disappear.

        With `resource_version`, the patch also sets metadata.resourceVersion to it, which the API server
        checks like an update's precondition: a change since that version is a 409, not a silent overwrite.
        """
        self.requests["patch modelrollout/status"] += 1
        operations: list[dict[str, Any]] = []
        if resource_version is not None:
            operations.append(
                {"op": "replace", "path": "/metadata/resourceVersion", "value": resource_version}
            )
        operations.append({"op": "add", "path": "/status", "value": status})
        result = await _call(
            f"write status of {KIND} {namespace}/{name}",
            self.custom.patch_namespaced_custom_object_status(
                GROUP, VERSION, namespace, PLURAL, name, operations, _content_type=JSON_PATCH
            ),
        )
        self.writes["status"] += 1
        return str((result.get("metadata") or {}).get("resourceVersion") or "")

    # Workloads -------------------------------------------------------------------------------------------
    async def list_deployments(self, namespace: str, rollout: str) -> list[dict[str, Any]]:
        cached = self.informer.deployments(namespace, rollout) if self.informer is not None else None
        if cached is not None:
            return cached
        self.requests["list deployment"] += 1
        found = await _call(
            f"list Deployments of {namespace}/{rollout}",
            self.apps.list_namespaced_deployment(namespace, label_selector=f"{ROLLOUT_LABEL}={rollout}"),
        )
        return [self._plain(item) for item in found.items]

    async def apply(self, obj: dict[str, Any]) -> None:
        """Server-side apply of a Deployment or Service we own."""
        kind, name = obj["kind"], obj["metadata"]["name"]
        self.requests[f"apply {kind.lower()}"] += 1
        namespace = obj["metadata"]["namespace"]
        if kind == "Deployment":
            patch = self.apps.patch_namespaced_deployment
        elif kind == "Service":
            patch = self.core.patch_namespaced_service
        else:
            raise ValueError(f"apply does not handle {kind}")
        await _call(
            f"apply {kind} {namespace}/{name}",
            patch(name, namespace, obj, field_manager=FIELD_MANAGER, force=True, _content_type=APPLY),
        )
        self.writes[kind.lower()] += 1

    async def workload_owners(self, kind: str, namespace: str, name: str) -> list[str] | None:
        if kind == "Deployment":
            read = self.apps.read_namespaced_deployment
        elif kind == "Service":
            read = self.core.read_namespaced_service
        else:
            raise ValueError(f"workload_owners does not handle {kind}")
        found = await _call(f"read {kind} {namespace}/{name}", read(name, namespace), missing_ok=True)
        if found is None:
            return None
        return [owner.uid for owner in found.metadata.owner_references or []]

    async def scale(self, namespace: str, name: str, replicas: int) -> None:
        self.requests["patch deployment/scale"] += 1
        await _call(
            f"scale Deployment {namespace}/{name}",
            self.apps.patch_namespaced_deployment_scale(
                name, namespace, {"spec": {"replicas": replicas}}, _content_type=MERGE
            ),
        )
        self.writes["deployment"] += 1

    async def delete_workload(self, namespace: str, name: str) -> None:
        """Deletes a version's Deployment and Service; already gone is fine."""
        for kind, call in (
            ("deployment", self.apps.delete_namespaced_deployment),
            ("service", self.core.delete_namespaced_service),
        ):
            self.requests[f"delete {kind}"] += 1
            await _call(f"delete {kind} {namespace}/{name}", call(name, namespace), missing_ok=True)
            self.writes[kind] += 1

    async def service_versions(self, namespace: str, rollout: str) -> dict[str, str]:
        """Service name -> model version, for the Services of one rollout."""
        self.requests["list service"] += 1
        found = await _call(
            f"list Services of {namespace}/{rollout}",
            self.core.list_namespaced_service(namespace, label_selector=f"{ROLLOUT_LABEL}={rollout}"),
        )
        return {
            str(item.metadata.name): str((item.metadata.labels or {}).get(VERSION_LABEL, ""))
            for item in found.items
        }

    async def list_pods(self, namespace: str, rollout: str) -> list[dict[str, Any]]:
        found = await _call(
            f"list Pods of {namespace}/{rollout}",
            self.core.list_namespaced_pod(namespace, label_selector=f"{ROLLOUT_LABEL}={rollout}"),
        )
        return [self._plain(item) for item in found.items]

    # VirtualServices and HTTPRoutes ------------------------------------------------------------------------
    async def get_virtual_service(self, namespace: str, name: str) -> dict[str, Any] | None:
        return await self._get_route(_VIRTUAL_SERVICE, namespace, name)

    async def create_virtual_service(self, obj: dict[str, Any]) -> None:
        await self._create_route(_VIRTUAL_SERVICE, obj)

    async def update_virtual_service(self, live: dict[str, Any], patch: dict[str, Any]) -> None:
        """Merge-patches a VirtualService read earlier; its resourceVersion makes a concurrent change a 409."""
        await self._update_route(_VIRTUAL_SERVICE, live, patch)

    async def get_http_route(self, namespace: str, name: str) -> dict[str, Any] | None:
        return await self._get_route(_HTTP_ROUTE, namespace, name)

    async def create_http_route(self, obj: dict[str, Any]) -> None:
        await self._create_route(_HTTP_ROUTE, obj)

    async def update_http_route(self, live: dict[str, Any], patch: dict[str, Any]) -> None:
        """Merge-patches an HTTPRoute read earlier; its resourceVersion makes a concurrent change a 409."""
        await self._update_route(_HTTP_ROUTE, live, patch)

    async def _get_route(self, kind: _RouteKind, namespace: str, name: str) -> dict[str, Any] | None:
        self.requests[f"get {kind.kind.lower()}"] += 1
        found = await _call(
            f"read {kind.kind} {namespace}/{name}",
            self.custom.get_namespaced_custom_object(kind.group, kind.version, namespace, kind.plural, name),
            missing_ok=True,
        )
        return dict(found) if found is not None else None

    async def _create_route(self, kind: _RouteKind, obj: dict[str, Any]) -> None:
        self.requests[f"create {kind.kind.lower()}"] += 1
        namespace = obj["metadata"]["namespace"]
        await _call(
            f"create {kind.kind} {namespace}/{obj['metadata']['name']}",
            self.custom.create_namespaced_custom_object(
                kind.group, kind.version, namespace, kind.plural, obj
            ),
        )
        self.writes[kind.kind.lower()] += 1

    async def _update_route(self, kind: _RouteKind, live: dict[str, Any], patch: dict[str, Any]) -> None:
        self.requests[f"patch {kind.kind.lower()}"] += 1
        meta = live["metadata"]
        body = {
            **patch,
            "metadata": {**patch.get("metadata", {}), "resourceVersion": meta["resourceVersion"]},
        }
        await _call(
            f"update {kind.kind} {meta['namespace']}/{meta['name']}",
            self.custom.patch_namespaced_custom_object(
                kind.group,
                kind.version,
                meta["namespace"],
                kind.plural,
                meta["name"],
                body,
                _content_type=MERGE,
            ),
        )
        self.writes[kind.kind.lower()] += 1

    async def delete_virtual_service(self, live: dict[str, Any]) -> None:
        """Deletes a VirtualService read earlier, only at that resourceVersion (a change since is a 409)."""
        await self._delete_route(_VIRTUAL_SERVICE, live)

    async def delete_http_route(self, live: dict[str, Any]) -> None:
        """Deletes an HTTPRoute read earlier, only at that resourceVersion (a change since is a 409)."""
        await self._delete_route(_HTTP_ROUTE, live)

    async def _delete_route(self, kind: _RouteKind, live: dict[str, Any]) -> None:
        meta = live["metadata"]
        await _call(
            f"delete {kind.kind} {meta['namespace']}/{meta['name']}",
            self.custom.delete_namespaced_custom_object(
                kind.group,
                kind.version,
                meta["namespace"],
                kind.plural,
                meta["name"],
                body={"preconditions": {"resourceVersion": meta["resourceVersion"]}},
            ),
            missing_ok=True,
        )
        self.writes[kind.kind.lower()] += 1

    # Events ------------------------------------------------------------------------------------------------
    async def create_event(self, rollout: dict[str, Any], kind: str, reason: str, message: str) -> None:
        self.requests["create event"] += 1
        meta = rollout["metadata"]
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": rollout.get("apiVersion", API_VERSION),
                "kind": rollout.get("kind", KIND),
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta.get("uid"),
            },
            "type": kind,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": EVENT_SOURCE},
            "reportingComponent": EVENT_COMPONENT,
            "reportingInstance": os.environ.get("HOSTNAME", EVENT_SOURCE),
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        await _call(
            f"record event on {meta['namespace']}/{meta['name']}",
            self.core.create_namespaced_event(meta["namespace"], event),
        )
        self.writes["event"] += 1
