"""The package's error root and the typed errors callers branch on.

Every error the operator raises on purpose derives from `ModelRolloutError`, so an edge can catch "ours"
apart from a bug. The subclasses below exist because some caller reacts differently to each; the ones that
also derive from ValueError are refusals of a bad input (a template, a route) that used to be plain
ValueErrors, and stay catchable as such.
"""

from __future__ import annotations


class ModelRolloutError(Exception):
    """Root of every error modelrollout raises on purpose."""


class InvalidTemplate(ModelRolloutError, ValueError):
    """spec.template cannot make a pod; the message names the field path."""


class InvalidRoutes(ModelRolloutError, ValueError):
    """Routes that Istio would refuse (a weight outside 0..100, a mirror without a candidate)."""


class KubeError(ModelRolloutError):
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

    @property
    def unreachable(self) -> bool:
        """The API server was not reached (or did not answer in time)."""
        return self.status == 0


class OwnershipRefused(ModelRolloutError):
    """An object the operator would write belongs to someone else (e.g. another rollout's VirtualService)."""

    def __init__(self, what: str, reason: str) -> None:
        super().__init__(f"{what}: {reason}")
        self.what = what
        self.reason = reason
