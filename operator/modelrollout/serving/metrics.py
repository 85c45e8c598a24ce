"""The metrics of the `modelrollout` profile, which the operator's query templates read.

    model_requests_total{model,version,slice,code}          requests answered, by HTTP status
    model_request_duration_seconds{model,version,slice}    histogram of request durations (1 ms .. 10 s)
    model_prediction_score{model,version,slice}            histogram of returned scores over [0, 1]
    model_predictions_total{model,version,slice,prediction}  answers (HTTP 200): prediction="value" or "null"
    model_feedback_total{model,version,slice,outcome}       labels received for earlier answers, by the version
                                                            and slice that answered: outcome="correct" or
                                                            "incorrect"

Each app owns its CollectorRegistry, so several apps in one process (tests, the fleet) never share series.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

REQUESTS = "model_requests_total"
DURATION = "model_request_duration_seconds"
SCORE = "model_prediction_score"
PREDICTIONS = "model_predictions_total"
FEEDBACK = "model_feedback_total"
LABELS = ("model", "version", "slice")
MAX_FEEDBACK_VERSIONS = 16
"""Versions one server counts feedback for; a bound on series, since request ids come from clients."""
ZERO_SCRAPES = 2
"""Scrapes that show a version's new feedback series at 0 before its labels count: Prometheus may drop one
(a scrape timeout), and a series whose first ingested sample is already 1 never shows that label in increase()."""

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
        self.predictions = Counter(
            PREDICTIONS,
            "Answered predictions (HTTP 200), by whether the prediction was usable (value) or null, empty or NaN.",
            [*LABELS, "prediction"],
            registry=self.registry,
        )
        self.feedback = Counter(
            FEEDBACK,
            "True labels received for earlier answers, by the version and slice that answered and whether the "
            "answer was correct.",
            [*LABELS, "outcome"],
            registry=self.registry,
        )
        self.slices = list(slices)
        self._feedback_versions: set[str] = set()
        # Labels for a version first seen here wait until its new series were scraped at 0 (ZERO_SCRAPES
        # times): increase() never sees the first sample of a series, so counting at once would lose them.
        self._unscraped: dict[str, int] = {}
        self._pending: Tally[tuple[str, str, str]] = Tally()
        for slice_name in self.slices:
            for code in PREINITIALISED_CODES:
                self.requests.labels(model, version, slice_name, code)
            self.duration.labels(model, version, slice_name)
            self.score.labels(model, version, slice_name)
            for kind in ("value", "null"):
                self.predictions.labels(model, version, slice_name, kind)
        self._start_feedback(version)
        self._unscraped.clear()  # created before any request: the first scrape shows them at 0

    def _start_feedback(self, version: str) -> bool:
        """Creates a version's feedback series at 0 (so its first label is an increase); False when full."""
        if version in self._feedback_versions:
            return True
        if len(self._feedback_versions) >= MAX_FEEDBACK_VERSIONS:
            return False
        self._feedback_versions.add(version)
        self._unscraped[version] = ZERO_SCRAPES
        for slice_name in self.slices:
            for outcome in ("correct", "incorrect"):
                self.feedback.labels(self.model, version, slice_name, outcome)
        return True

    def observe(
        self, slice_name: str, code: int, duration: float, score: float | None = None, null: bool = False
    ) -> None:
        """Records one answered request; the score only when one was returned; `null`: a null prediction."""
        labels = (self.model, self.version, slice_name)
        self.requests.labels(*labels, str(code)).inc()
        self.duration.labels(*labels).observe(duration)
        if code == 200:
            self.predictions.labels(*labels, "null" if null else "value").inc()
        if score is not None:
            self.score.labels(*labels).observe(score)

    def observe_feedback(self, version: str, slice_name: str, correct: bool) -> bool:
        """Counts one label for the version and slice that answered; False when that version is over the
        bound of versions this server counts for."""
        if not self._start_feedback(version):
            return False
        outcome = "correct" if correct else "incorrect"
        if version in self._unscraped:
            self._pending[(version, slice_name, outcome)] += 1
        else:
            self.feedback.labels(self.model, version, slice_name, outcome).inc()
        return True

    def exposition(self) -> tuple[bytes, str]:
        """The Prometheus text exposition and its content type; scrapes release labels held back for them."""
        text = generate_latest(self.registry)
        for version in list(self._unscraped):
            self._unscraped[version] -= 1
            if self._unscraped[version] <= 0:
                del self._unscraped[version]
        for key in [key for key in self._pending if key[0] not in self._unscraped]:
            self.feedback.labels(self.model, *key).inc(self._pending.pop(key))
        return text, CONTENT_TYPE_LATEST
