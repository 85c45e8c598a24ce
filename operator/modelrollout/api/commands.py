"""Manual commands travel as annotations on the ModelRollout, so they never change the spec Git owns.

`modelrollout.io/paused: "true"` holds the rollout while present. `modelrollout.io/promote`,
`modelrollout.io/abort` and `modelrollout.io/retry` carry a command id (e.g. a timestamp); the operator acts
once per new id and records it in status.acknowledged. A promote id prefixed with "full:" skips all remaining
steps; retry starts a rolled-back, blocked or failed rollout of the same version again from the beginning.
"""

from __future__ import annotations

from collections.abc import Mapping

from modelrollout.identity import ABORT_ANNOTATION as ABORT
from modelrollout.identity import PAUSED_ANNOTATION as PAUSED
from modelrollout.identity import PROMOTE_ANNOTATION as PROMOTE
from modelrollout.identity import RETRY_ANNOTATION as RETRY

__all__ = [
    "ABORT",
    "FULL_PREFIX",
    "PAUSED",
    "PROMOTE",
    "RETRY",
    "abort_id",
    "is_paused",
    "promote_id",
    "retry_id",
]

FULL_PREFIX = "full:"


def is_paused(annotations: Mapping[str, str]) -> bool:
    return annotations.get(PAUSED, "").strip().lower() in ("true", "1", "yes")


def promote_id(annotations: Mapping[str, str]) -> tuple[str | None, bool]:
    """The promote command id and whether it asks for a full promotion."""
    value = annotations.get(PROMOTE, "").strip()
    if not value:
        return None, False
    return value, value.startswith(FULL_PREFIX)


def abort_id(annotations: Mapping[str, str]) -> str | None:
    return annotations.get(ABORT, "").strip() or None


def retry_id(annotations: Mapping[str, str]) -> str | None:
    return annotations.get(RETRY, "").strip() or None
