"""Result and data types of the analysis: Prometheus samples, query errors, per-slice verdicts.

Everything here is pure data. The error types live here (not in `prometheus`) so the pure judges can name
them without importing the HTTP client.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from pydantic import Field

from modelrollout.api.common import Model
from modelrollout.api.status import GuardVerdict, Samples, Verdict
from modelrollout.errors import ModelRolloutError


@dataclass(frozen=True)
class Sample:
    """One element of an instant vector: its labels and its value (NaN and +-Inf are kept as floats)."""

    labels: dict[str, str] = field(hash=False)
    value: float


class PrometheusError(ModelRolloutError):
    """A query that produced no usable answer; judged Inconclusive, never Pass."""

    kind = "PrometheusError"

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status

    def __str__(self) -> str:
        return f"{self.kind}: {self.message}"


class BadData(PrometheusError):
    """The query was refused as malformed (HTTP 400, errorType bad_data): a template or custom query bug."""

    kind = "BadData"


class ExecutionError(PrometheusError):
    """Prometheus could not evaluate the query (HTTP 422, errorType execution), or another error payload."""

    kind = "ExecutionError"


class QueryTimeout(PrometheusError):
    """The query ran out of time, on the client or on the server (errorType timeout or canceled)."""

    kind = "QueryTimeout"


class Unavailable(PrometheusError):
    """Prometheus could not be reached or answered garbage (connection refused, 5xx, non-JSON body)."""

    kind = "Unavailable"


class PartialData(PrometheusError):
    """Prometheus answered with `warnings` (a store or shard did not answer): series may be missing, so the
    samples are not judged."""

    kind = "PartialData"


QueryOutcome = list[Sample] | PrometheusError
"""What one query gave: its samples, or the reason it gave none."""


class SliceVerdict(Model):
    """One slice's verdict: Fail if any guard fails, else Inconclusive if any is, else Pass."""

    name: str
    """Slice name ('default' is unmatched traffic)."""
    verdict: Verdict
    """Pass, Fail or Inconclusive."""
    samples: Samples
    """Requests per version behind the verdict (the largest count any guard saw)."""
    guards: list[GuardVerdict]
    """Per-guard verdicts with evidence, in spec order."""


class AnalysisResult(Model):
    """One analysis tick: every slice's verdict, what it cost and what went wrong on the way."""

    slices: dict[str, SliceVerdict]
    """Verdict per slice name, for every slice of the spec including 'default'."""
    queries: int
    """Prometheus queries issued for this tick."""
    errors: list[str]
    """Query failures, one line each (they also show as Inconclusive guard verdicts)."""
    partial: bool = False
    """Some query failed because Prometheus answered with partial-data warnings."""
    no_data: list[str] = Field(default_factory=list)
    """Guards whose query answered with no series at all (nothing to judge on any slice)."""
    evaluated_at: datetime
    """Evaluation time of the queries."""

    def failing(self) -> list[str]:
        """Names of the slices whose verdict is Fail, in slice order."""
        return [name for name, verdict in self.slices.items() if verdict.verdict == "Fail"]

    def inconclusive(self) -> list[str]:
        """Names of the slices whose verdict is Inconclusive, in slice order."""
        return [name for name, verdict in self.slices.items() if verdict.verdict == "Inconclusive"]
