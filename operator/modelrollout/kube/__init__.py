"""The only module that talks to the Kubernetes API (kubernetes.aio).

Objects travel as plain dicts in their wire form, so the pure core never sees client model classes.
Every write is counted by kind, which the operator exports and the benchmarks read.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kubernetes.aio import client, config
from kubernetes.aio.client.exceptions import ApiException

from modelrollout.api.crd import GROUP, PLURAL, VERSION

_config: Any = config
ISTIO_GROUP, ISTIO_VERSION, VIRTUAL_SERVICES = "networking.istio.io", "v1", "virtualservices"
FIELD_MANAGER = "modelrollout"
ROLLOUT_LABEL = "modelrollout.io/rollout"
APPLY = "application/apply-patch+yaml"
MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"


class KubeError(RuntimeError):
    """An API call failed; `status` is the HTTP status (0 when the server was not reached)."""

    def __init__(self, action: str, status: int, message: str) -> None:
        super().__init__(f"{action}: {message}" + (f" (HTTP {status})" if status else ""))
        self.action = action
        self.status = status
        self.message = message

    @property
    def conflict(self) -> bool:
        return self.status == 409

    @property
    def not_found(self) -> bool:
        return self.status == 404


def _error(action: str, error: Exception) -> KubeError:
    if isinstance(error, ApiException):
        message = error.reason or "error"
        with contextlib.suppress(ValueError, AttributeError):
            message = json.loads(error.body or "{}").get("message", message)
        return KubeError(action, int(error.status or 0), str(message))
    return KubeError(action, 0, f"{type(error).__name__}: {error}")


def _has_default_kubeconfig() -> bool:
    return Path("~/.kube/config").expanduser().exists()


SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def default_namespace(kubeconfig: str | None = None, context: str | None = None) -> str:
    """The namespace kubectl would use: the context's, the pod's own when in-cluster, else "default"."""
    path = kubeconfig or os.environ.get("KUBECONFIG")
    if path or _has_default_kubeconfig():
        contexts, current = _config.list_kube_config_contexts(config_file=path)
        chosen = next((c for c in contexts if c.get("name") == context), None) if context else current
        if context and chosen is None:
            raise KubeError("read kubeconfig", 0, f"context {context!r} not found")
        namespace = ((chosen or {}).get("context") or {}).get("namespace")
        return str(namespace) if namespace else "default"
    if SERVICE_ACCOUNT_NAMESPACE.is_file():
        return SERVICE_ACCOUNT_NAMESPACE.read_text().strip() or "default"
    return "default"


class Kube:
    """Thin async wrapper over the API calls the operator, the sandbox and the kubectl plugin make."""

    def __init__(self, api: client.ApiClient) -> None:
        # The generated client is only partly typed; dict bodies and answers cross it as Any.
        self.api: Any = api
        self.core: Any = client.CoreV1Api(api)
        self.apps: Any = client.AppsV1Api(api)
        self.custom: Any = client.CustomObjectsApi(api)
        self.writes: Counter[str] = Counter()

    @classmethod
    async def connect(cls, kubeconfig: str | None = None, context: str | None = None) -> Kube:
        """From a kubeconfig (argument, $KUBECONFIG or ~/.kube/config), else the in-cluster service account."""
        configuration = client.Configuration()
        path = kubeconfig or os.environ.get("KUBECONFIG")
        if path or _has_default_kubeconfig():
            await _config.load_kube_config(
                config_file=path, context=context, client_configuration=configuration
            )
        else:
            _config.load_incluster_config(client_configuration=configuration)
        return cls(client.ApiClient(configuration))

    async def close(self) -> None:
        await self.api.close()

    def _plain(self, obj: Any) -> dict[str, Any]:
        return dict(self.api.sanitize_for_serialization(obj))

    # ModelRollouts ---------------------------------------------------------------------------------------
    async def get_rollout(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return dict(
                await self.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
            )
        except ApiException as error:
            if error.status == 404:
                return None
            raise _error(f"read ModelRollout {namespace}/{name}", error) from None

    async def list_rollouts(self, namespace: str | None) -> list[dict[str, Any]]:
        try:
            if namespace:
                found = await self.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)
            else:
                found = await self.custom.list_cluster_custom_object(GROUP, VERSION, PLURAL)
        except ApiException as error:
            raise _error("list ModelRollouts", error) from None
        return list(found.get("items", []))

    async def patch_rollout(self, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        """Merge-patches metadata or spec (commands from the kubectl plugin)."""
        try:
            result = await self.custom.patch_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, name, patch, _content_type=MERGE
            )
        except ApiException as error:
            raise _error(f"patch ModelRollout {namespace}/{name}", error) from None
        self.writes["modelrollout"] += 1
        return dict(result)

    async def patch_rollout_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        """Replaces the whole status (a JSON patch `add` of /status), so fields the planner cleared disappear."""
        try:
            await self.custom.patch_namespaced_custom_object_status(
                GROUP,
                VERSION,
                namespace,
                PLURAL,
                name,
                [{"op": "add", "path": "/status", "value": status}],
                _content_type=JSON_PATCH,
            )
        except ApiException as error:
            raise _error(f"write status of ModelRollout {namespace}/{name}", error) from None
        self.writes["status"] += 1

    # Workloads -------------------------------------------------------------------------------------------
    async def list_deployments(self, namespace: str, rollout: str) -> list[dict[str, Any]]:
        try:
            found = await self.apps.list_namespaced_deployment(
                namespace, label_selector=f"{ROLLOUT_LABEL}={rollout}"
            )
        except ApiException as error:
            raise _error(f"list Deployments of {namespace}/{rollout}", error) from None
        return [self._plain(item) for item in found.items]

    async def apply(self, obj: dict[str, Any]) -> None:
        """Server-side apply of a Deployment or Service we own."""
        kind, name = obj["kind"], obj["metadata"]["name"]
        namespace = obj["metadata"]["namespace"]
        try:
            if kind == "Deployment":
                await self.apps.patch_namespaced_deployment(
                    name, namespace, obj, field_manager=FIELD_MANAGER, force=True, _content_type=APPLY
                )
            elif kind == "Service":
                await self.core.patch_namespaced_service(
                    name, namespace, obj, field_manager=FIELD_MANAGER, force=True, _content_type=APPLY
                )
            else:
                raise ValueError(f"apply does not handle {kind}")
        except ApiException as error:
            raise _error(f"apply {kind} {namespace}/{name}", error) from None
        self.writes[kind.lower()] += 1

    async def scale(self, namespace: str, name: str, replicas: int) -> None:
        try:
            await self.apps.patch_namespaced_deployment_scale(
                name, namespace, {"spec": {"replicas": replicas}}, _content_type=MERGE
            )
        except ApiException as error:
            raise _error(f"scale Deployment {namespace}/{name}", error) from None
        self.writes["deployment"] += 1

    async def delete_workload(self, namespace: str, name: str) -> None:
        """Deletes a version's Deployment and Service; already gone is fine."""
        for kind, call in (
            ("deployment", self.apps.delete_namespaced_deployment),
            ("service", self.core.delete_namespaced_service),
        ):
            try:
                await call(name, namespace)
            except ApiException as error:
                if error.status != 404:
                    raise _error(f"delete {kind} {namespace}/{name}", error) from None
            self.writes[kind] += 1

    async def service_versions(self, namespace: str, rollout: str) -> dict[str, str]:
        """Service name -> model version, for the Services of one rollout."""
        try:
            found = await self.core.list_namespaced_service(
                namespace, label_selector=f"{ROLLOUT_LABEL}={rollout}"
            )
        except ApiException as error:
            raise _error(f"list Services of {namespace}/{rollout}", error) from None
        return {
            str(item.metadata.name): str((item.metadata.labels or {}).get("modelrollout.io/version", ""))
            for item in found.items
        }

    # VirtualServices ---------------------------------------------------------------------------------------
    async def get_virtual_service(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return dict(
                await self.custom.get_namespaced_custom_object(
                    ISTIO_GROUP, ISTIO_VERSION, namespace, VIRTUAL_SERVICES, name
                )
            )
        except ApiException as error:
            if error.status == 404:
                return None
            raise _error(f"read VirtualService {namespace}/{name}", error) from None

    async def create_virtual_service(self, obj: dict[str, Any]) -> None:
        namespace = obj["metadata"]["namespace"]
        try:
            await self.custom.create_namespaced_custom_object(
                ISTIO_GROUP, ISTIO_VERSION, namespace, VIRTUAL_SERVICES, obj
            )
        except ApiException as error:
            raise _error(f"create VirtualService {namespace}/{obj['metadata']['name']}", error) from None
        self.writes["virtualservice"] += 1

    async def update_virtual_service(self, live: dict[str, Any], patch: dict[str, Any]) -> None:
        """Merge-patches a VirtualService read earlier; its resourceVersion makes a concurrent change a 409."""
        meta = live["metadata"]
        body = {
            **patch,
            "metadata": {**patch.get("metadata", {}), "resourceVersion": meta["resourceVersion"]},
        }
        try:
            await self.custom.patch_namespaced_custom_object(
                ISTIO_GROUP,
                ISTIO_VERSION,
                meta["namespace"],
                VIRTUAL_SERVICES,
                meta["name"],
                body,
                _content_type=MERGE,
            )
        except ApiException as error:
            raise _error(f"update VirtualService {meta['namespace']}/{meta['name']}", error) from None
        self.writes["virtualservice"] += 1

    # Events ------------------------------------------------------------------------------------------------
    async def create_event(self, rollout: dict[str, Any], kind: str, reason: str, message: str) -> None:
        meta = rollout["metadata"]
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": rollout.get("apiVersion", f"{GROUP}/{VERSION}"),
                "kind": rollout.get("kind", "ModelRollout"),
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta.get("uid"),
            },
            "type": kind,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": "modelrollout"},
            "reportingComponent": "modelrollout.io/operator",
            "reportingInstance": os.environ.get("HOSTNAME", "modelrollout"),
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        try:
            await self.core.create_namespaced_event(meta["namespace"], event)
        except ApiException as error:
            raise _error(f"record event on {meta['namespace']}/{meta['name']}", error) from None
        self.writes["event"] += 1
