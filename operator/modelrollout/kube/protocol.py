"""The seam between the operator and the Kubernetes API: what every caller may ask of a cluster.

`KubeApi` is a structural type: the real client (`modelrollout.kube.client.Kube`) and the in-memory fake the
tests use (`tests/support/fake_kube.py`) both satisfy it. Objects travel as plain dicts in their wire form;
every failure is a `KubeError` (an HTTP status, or 0 when the server was not reached).
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Protocol

from modelrollout.kube.clock import ServerClock


class KubeApi(Protocol):
    """The API calls the operator, the sandbox and the kubectl plugin make."""

    writes: Counter[str]
    """Writes by kind since the counter was last cleared (the operator exports them; benchmarks read them)."""
    requests: Counter[str]
    """API requests (reads and writes) by "verb resource" since last cleared; watches are not counted."""
    clock: ServerClock
    """The API server's time, as learnt from its answers (every decision is timed by it)."""

    async def close(self) -> None: ...

    # ModelRollouts
    async def get_rollout(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The rollout, or None when it does not exist."""
        ...

    async def list_rollouts(self, namespace: str | None) -> list[dict[str, Any]]: ...

    async def patch_rollout(self, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        """Merge-patches metadata or spec; returns the updated object."""
        ...

    async def patch_rollout_status(
        self, namespace: str, name: str, status: dict[str, Any], resource_version: str | None = None
    ) -> str:
        """Replaces the whole status subresource; returns the new resourceVersion. With `resource_version`,
        only if the object is still at that version (a change since is a 409 conflict)."""
        ...

    # Workloads
    async def list_deployments(self, namespace: str, rollout: str) -> list[dict[str, Any]]:
        """Deployments labelled with the rollout's name (from the watch once `watch_deployments` ran)."""
        ...

    def watch_deployments(self, namespaces: list[str]) -> None:
        """Keeps a watch-fed cache of the rollouts' Deployments that list_deployments reads from then on."""
        ...

    async def apply(self, obj: dict[str, Any]) -> None:
        """Server-side apply of a Deployment or Service the operator owns."""
        ...

    async def workload_owners(self, kind: str, namespace: str, name: str) -> list[str] | None:
        """The ownerReference uids of a Deployment or Service; None when there is no such object."""
        ...

    async def scale(self, namespace: str, name: str, replicas: int) -> None: ...

    async def delete_workload(self, namespace: str, name: str) -> None:
        """Deletes a version's Deployment and Service; already gone is fine."""
        ...

    async def service_versions(self, namespace: str, rollout: str) -> dict[str, str]:
        """Service name -> model version, for the Services of one rollout."""
        ...

    async def list_pods(self, namespace: str, rollout: str) -> list[dict[str, Any]]:
        """Pods labelled with the rollout's name (the sandbox routes to the ready ones, as Envoy would)."""
        ...

    # VirtualServices
    async def get_virtual_service(self, namespace: str, name: str) -> dict[str, Any] | None: ...

    async def create_virtual_service(self, obj: dict[str, Any]) -> None: ...

    async def update_virtual_service(self, live: dict[str, Any], patch: dict[str, Any]) -> None:
        """Merge-patches a VirtualService read earlier; a change since that read is a 409 conflict."""
        ...

    # HTTPRoutes (Gateway API)
    async def get_http_route(self, namespace: str, name: str) -> dict[str, Any] | None: ...

    async def create_http_route(self, obj: dict[str, Any]) -> None: ...

    async def update_http_route(self, live: dict[str, Any], patch: dict[str, Any]) -> None:
        """Merge-patches an HTTPRoute read earlier; a change since that read is a 409 conflict."""
        ...

    async def delete_http_route(self, live: dict[str, Any]) -> None:
        """Deletes an HTTPRoute read earlier; a change since that read is a 409 conflict; gone is fine."""
        ...

    async def delete_virtual_service(self, live: dict[str, Any]) -> None:
        """Deletes a VirtualService read earlier; a change since that read is a 409 conflict; gone is fine."""
        ...

    # Events
    async def create_event(self, rollout: dict[str, Any], kind: str, reason: str, message: str) -> None: ...
