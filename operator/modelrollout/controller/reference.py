"""A small, typed reference to the rollout a tick works on, read once from the live object."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from modelrollout.identity import API_VERSION, KIND


@dataclass(frozen=True)
class RolloutRef:
    """Identity and generation of one ModelRollout, and its command annotations, as read this tick."""

    namespace: str
    name: str
    uid: str
    generation: int
    annotations: Mapping[str, str] = field(default_factory=dict)
    resource_version: str | None = None
    """The version read this tick: the status is written only onto it (a change since is a conflict)."""

    @classmethod
    def from_object(cls, body: Mapping[str, Any]) -> RolloutRef:
        meta = body.get("metadata") or {}
        return cls(
            namespace=str(meta.get("namespace") or ""),
            name=str(meta.get("name") or ""),
            uid=str(meta.get("uid") or ""),
            generation=int(meta.get("generation") or 0),
            annotations=dict(meta.get("annotations") or {}),
            resource_version=str(meta["resourceVersion"]) if meta.get("resourceVersion") else None,
        )

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)

    def event_target(self) -> dict[str, Any]:
        """The object an Event is recorded on."""
        return {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "metadata": {"name": self.name, "namespace": self.namespace, "uid": self.uid},
        }

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"
