"""The operator's own Prometheus metrics: where every rollout is, per-slice weights and guard values, decisions.

Series are keyed by namespace and rollout; a deleted rollout's series are dropped with `forget`.
"""

from __future__ import annotations

from typing import get_args

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from modelrollout.analysis.results import AnalysisResult
from modelrollout.api.status import ModelRolloutStatus, Phase

PHASES: tuple[str, ...] = get_args(Phase)
VERDICT_VALUE = {"Pass": 1.0, "Inconclusive": 0.0, "Fail": -1.0}


ROLLOUT = ("namespace", "rollout")
SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
LATENESS_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30)


class OperatorMetrics:
    """Every series the operator exports, in one registry (the /metrics endpoint serves it)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        g, c = self._gauge, self._counter
        self.phase = g("modelrollout_phase", "1 for the rollout's current phase, 0 for the others", "phase")
        self.step = g("modelrollout_step", "Current canary step (1-based, 0 outside the canary)")
        self.weight = g(
            "modelrollout_canary_weight_percent", "Candidate share of a slice's requests", "slice"
        )
        self.mirror = g("modelrollout_mirror_percent", "Share mirrored to the candidate")
        self.guard_value = g(
            "modelrollout_guard_value",
            "Latest guard value per slice and version (role: stable or canary)",
            "slice",
            "guard",
            "role",
        )
        self.guard_threshold = g(
            "modelrollout_guard_threshold", "Bound the candidate's value was held to", "slice", "guard"
        )
        self.guard_verdict = g(
            "modelrollout_guard_verdict",
            "Latest guard verdict: 1 Pass, 0 Inconclusive, -1 Fail",
            "slice",
            "guard",
        )
        self.slice_verdict = g(
            "modelrollout_slice_verdict", "Latest slice verdict: 1 Pass, 0 Inconclusive, -1 Fail", "slice"
        )
        self.analysis_seconds = Histogram(
            "modelrollout_analysis_duration_seconds",
            "Time to query Prometheus and judge every slice, per tick",
            ROLLOUT,
            buckets=SECONDS_BUCKETS,
            registry=self.registry,
        )
        self.tick_seconds = Histogram(
            "modelrollout_reconcile_duration_seconds",
            "Time of one reconcile tick (reads, analysis, plan, writes)",
            buckets=SECONDS_BUCKETS,
            registry=self.registry,
        )
        self.queries = c(
            "modelrollout_prometheus_queries_total", "Prometheus queries a rollout's analysis needed"
        )
        self.prometheus_requests = Counter(
            "modelrollout_prometheus_requests_total",
            "Queries sent to Prometheus (a batched query serving many rollouts counts once)",
            registry=self.registry,
        )
        self.decisions = c("modelrollout_decisions_total", "Decisions taken, by reason", "reason")
        self.api_writes = Counter(
            "modelrollout_api_writes_total",
            "Kubernetes API writes, by object kind",
            ["kind"],
            registry=self.registry,
        )
        self.api_requests = Counter(
            "modelrollout_api_requests_total",
            "Kubernetes API requests made by ticks (reads and writes; watches not counted), by verb and resource",
            ["verb", "resource"],
            registry=self.registry,
        )
        self.tick_lateness = Histogram(
            "modelrollout_tick_lateness_seconds",
            "How late a timed tick started (actual start minus due time); early wake-ups are not counted",
            buckets=LATENESS_BUCKETS,
            registry=self.registry,
        )
        self.errors = c("modelrollout_reconcile_errors_total", "Ticks that hit an error, by cause", "cause")
        self.notification_failures = c(
            "modelrollout_notification_failures_total", "Notification webhooks that failed"
        )
        self.route_drift = c(
            "modelrollout_route_drift_total",
            "Owned routes found changed by someone else and restored",
            "route",
        )

    def _gauge(self, name: str, documentation: str, *labels: str) -> Gauge:
        """A gauge per rollout (namespace, rollout, then `labels`)."""
        return Gauge(name, documentation, [*ROLLOUT, *labels], registry=self.registry)

    def _counter(self, name: str, documentation: str, *labels: str) -> Counter:
        """A counter per rollout (namespace, rollout, then `labels`)."""
        return Counter(name, documentation, [*ROLLOUT, *labels], registry=self.registry)

    def observe_status(self, namespace: str, rollout: str, status: ModelRolloutStatus) -> None:
        for phase in PHASES:
            self.phase.labels(namespace, rollout, phase).set(1.0 if status.phase == phase else 0.0)
        self.step.labels(namespace, rollout).set(status.step)
        self.mirror.labels(namespace, rollout).set(status.mirror_percent)
        for item in status.slices:
            self.weight.labels(namespace, rollout, item.name).set(item.canary_weight)

    def observe_analysis(self, namespace: str, rollout: str, result: AnalysisResult, duration: float) -> None:
        self.analysis_seconds.labels(namespace, rollout).observe(duration)
        self.queries.labels(namespace, rollout).inc(result.queries)
        for name, verdict in result.slices.items():
            self.slice_verdict.labels(namespace, rollout, name).set(VERDICT_VALUE[verdict.verdict])
            for guard in verdict.guards:
                self.guard_verdict.labels(namespace, rollout, name, guard.name).set(
                    VERDICT_VALUE[guard.verdict]
                )
                for role, value in (("stable", guard.stable), ("canary", guard.canary)):
                    if value is not None:
                        self.guard_value.labels(namespace, rollout, name, guard.name, role).set(value)
                if guard.threshold is not None:
                    self.guard_threshold.labels(namespace, rollout, name, guard.name).set(guard.threshold)

    def forget(self, namespace: str, rollout: str) -> None:
        """Drops every series of a deleted rollout."""
        for metric in (
            self.phase, self.step, self.weight, self.mirror, self.guard_value, self.guard_threshold,
            self.guard_verdict, self.slice_verdict, self.analysis_seconds, self.queries, self.decisions,
            self.errors, self.notification_failures, self.route_drift,
        ):  # fmt: skip
            for labels in list(metric._metrics):  # prometheus_client keeps children keyed by label values
                if labels[:2] == (namespace, rollout):
                    metric.remove(*labels)
