"""Starts the operator: kopf with our handlers, the metrics endpoint and kopf's liveness endpoint."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import kopf
from prometheus_client import start_http_server

from modelrollout.api.common import seconds
from modelrollout.controller import handlers
from modelrollout.controller.metrics import OperatorMetrics


@dataclass
class OperatorOptions:
    namespaces: list[str]
    kubeconfig: str | None = None
    metrics_address: str = "0.0.0.0:8000"
    health_address: str = "0.0.0.0:8080"
    log_format: str = "text"
    verbose: bool = False
    status_refresh: str = "60s"
    leader_elect: bool = False
    lease_name: str = "modelrollout-operator"
    lease_namespace: str | None = None
    lease_duration: str = "15s"
    batch_queries: bool = True
    batch_window: str = "500ms"


def _split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host or "0.0.0.0", int(port)


def run(options: OperatorOptions) -> None:
    if options.kubeconfig:
        os.environ["KUBECONFIG"] = options.kubeconfig  # kopf's own login reads it too
    kopf.configure(
        verbose=options.verbose,
        log_format=kopf.LogFormat.JSON if options.log_format == "json" else kopf.LogFormat.PLAIN,
    )
    logging.getLogger("modelrollout").setLevel(logging.DEBUG if options.verbose else logging.INFO)
    if not options.verbose:
        # One line per Prometheus query and per watch event drowns the decisions; -v brings them back.
        logging.getLogger("httpx").setLevel(logging.WARNING)
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    metrics = OperatorMetrics()
    handlers.configure(
        handlers.OperatorConfig(
            kubeconfig=options.kubeconfig,
            namespaces=options.namespaces,
            leader_lease=(
                (options.lease_namespace or os.environ.get("POD_NAMESPACE") or "default", options.lease_name)
                if options.leader_elect
                else None
            ),
            lease_duration=seconds(options.lease_duration),
            status_refresh=seconds(options.status_refresh),
            metrics=metrics,
            batch_window=seconds(options.batch_window) if options.batch_queries else None,
        )
    )
    host, port = _split(options.metrics_address)
    start_http_server(port, addr=host, registry=metrics.registry)
    health_host, health_port = _split(options.health_address)
    kopf.run(
        standalone=True,
        clusterwide=not options.namespaces,
        namespaces=options.namespaces,
        liveness_endpoint=f"http://{health_host}:{health_port}/healthz",
    )
