"""Sending ModelRollouts to the real API server with create + dryRun=All: nothing is stored."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from kubernetes.aio import client
from kubernetes.aio.client import ApiException

from modelrollout.identity import GROUP, PLURAL, VERSION


@dataclass
class Answer:
    """The API server's answer to a dry-run create."""

    status: int
    body: dict[str, Any]
    message: str = ""
    fields: list[str] = field(default_factory=list)

    @property
    def accepted(self) -> bool:
        return self.status == 201


async def dry_run_create(
    custom: client.CustomObjectsApi, namespace: str, body: dict[str, Any], strict: bool = True
) -> Answer:
    """Creates `body` with dryRun=All; `strict` sends fieldValidation=Strict as kubectl does.

    The client sends no fieldValidation of its own, which the API server treats as Warn: unknown fields are
    dropped with a warning header and the object is accepted. Only Strict refuses them (400 BadRequest).
    """
    try:
        created: Any = await custom.create_namespaced_custom_object(
            GROUP,
            VERSION,
            namespace,
            PLURAL,
            body,
            dry_run="All",
            field_validation="Strict" if strict else None,
        )
    except ApiException as error:
        status: dict[str, Any] = json.loads(error.body or "{}")
        causes = status.get("details", {}).get("causes", [])
        return Answer(
            status=int(error.status),
            body=status,
            message=str(status.get("message", "")),
            fields=[str(c["field"]) for c in causes if "field" in c],
        )
    assert isinstance(created, dict)
    return Answer(status=201, body=created)
