"""The operator as a local process, the way the demo and the e2e tests run it (and kill it)."""

from __future__ import annotations

import sys
from pathlib import Path

from modelrollout.sandbox.processes import Process, free_port, http_ok, start, wait_ready


class OperatorProcess:
    """`modelrollout operator` watching one namespace (or all), with its metrics and health on 127.0.0.1."""

    def __init__(
        self,
        kubeconfig: Path,
        namespace: str | None,
        logs: Path,
        status_refresh: str = "60s",
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.kubeconfig = kubeconfig
        self.namespace = namespace
        self.log = logs / f"operator-{namespace or 'all'}.log"
        self.status_refresh = status_refresh
        self.extra_args = extra_args
        self.metrics_port = free_port()
        self.health_port = free_port()
        self.process: Process | None = None
        self.starts = 0

    @property
    def metrics_address(self) -> str:
        return f"127.0.0.1:{self.metrics_port}"

    def start(self, timeout: float = 30.0) -> None:
        argv = [
            sys.executable, "-m", "modelrollout.cli.main", "operator",
            f"--kubeconfig={self.kubeconfig}",
            *([f"--namespace={self.namespace}"] if self.namespace else []),
            f"--metrics-address={self.metrics_address}", f"--health-address=127.0.0.1:{self.health_port}",
            f"--status-refresh={self.status_refresh}", *self.extra_args,
        ]  # fmt: skip
        self.process = start("operator", argv, self.log)
        self.starts += 1
        wait_ready(self.process, http_ok(f"http://127.0.0.1:{self.health_port}/healthz"), timeout)

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process = None

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.alive()
