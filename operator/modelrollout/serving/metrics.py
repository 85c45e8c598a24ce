"""The metrics of the `modelrollout` profile, which the operator's query templates read.

    model_requests_total{model,version,slice,code}          requests answered, by HTTP status
    model_request_duration_seconds{model,version,slice}    histogram of request durations (1 ms .. 10 s)
    model_prediction_score{model,version,slice}            histogram of returned scores over [0, 1]

Each app owns its CollectorRegistry, so several apps in one process (tests, the fleet) never share series.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

REQUESTS = "model_requests_total"
DURATION = "model_request_duration_seconds"
SCORE = "model_prediction_score"
LABELS = ("model", "version", "slice")

# Dense around typical model latencies so that histogram_quantile's interpolation stays close for p50..p99.
DURATION_BUCKETS = (
    0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.04, 0.05, 0.075, 0.1, 0.15,
    0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 7.5, 10.0,
)  # fmt: skip
# 20 equal bins over [0, 1]: what the PSI/KS judges compare between versions.
SCORE_BUCKETS = tuple(round(i / 20, 2) for i in range(1, 21))
# Codes whose series exist from the start, so a first error is an increase from 0 and not a new series
# (increase() cannot see the first sample of a series that appears mid-window).
PREINITIALISED_CODES = ("200", "500")


class ServingMetrics:
    """Request, latency and score metrics of one served model version."""

    def __init__(
        self, model: str, version: str, slices: Iterable[str], registry: CollectorRegistry | None = None
    ) -> None:
        self.model = model
        self.version = version
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            REQUESTS,
            "Prediction requests answered, by slice and HTTP status code.",
            [*LABELS, "code"],
            registry=self.registry,
        )
        self.duration = Histogram(
            DURATION,
            "Time to answer a prediction request, in seconds.",
            LABELS,
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.score = Histogram(
            SCORE,
            "Prediction scores returned (successful requests only).",
            LABELS,
            buckets=SCORE_BUCKETS,
            registry=self.registry,
        )
        for slice_name in slices:
            for code in PREINITIALISED_CODES:
                self.requests.labels(model, version, slice_name, code)
            self.duration.labels(model, version, slice_name)
            self.score.labels(model, version, slice_name)

    def observe(self, slice_name: str, code: int, duration: float, score: float | None = None) -> None:
        """Records one answered request; the score only when a prediction was returned."""
        labels = (self.model, self.version, slice_name)
        self.requests.labels(*labels, str(code)).inc()
        self.duration.labels(*labels).observe(duration)
        if score is not None:
            self.score.labels(*labels).observe(score)

    def exposition(self) -> tuple[bytes, str]:
        """The Prometheus text exposition and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
