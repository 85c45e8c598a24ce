"""The operator as users run it: `helm install` of the chart, its image on the sandbox's real node.

The chart's own Deployment, ServiceAccount and RBAC; the image built from the repository's Dockerfile
(`images`); the pod runs non-root with a read-only root filesystem as the chart's defaults say, and reaches
the API server as in any cluster (in-cluster config, the `kubernetes` Service's ClusterIP, which the real
node's network namespace serves). Same surface as `OperatorProcess`, so the demo runner drives either.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from modelrollout.sandbox import tools
from modelrollout.sandbox.processes import SandboxError
from modelrollout.sandbox.realnode import placement

CHART = tools.REPO_ROOT / "charts" / "modelrollout-operator"


class OperatorPod:
    """One Helm release of the operator chart watching one namespace, its pod on the real node."""

    def __init__(
        self, kubeconfig: Path, namespace: str, image: str, logs: Path, status_refresh: str = "60s"
    ) -> None:
        self.kubeconfig = kubeconfig
        self.namespace = namespace
        self.image = image
        self.release = f"mro-{secrets.token_hex(3)}"
        self.log = logs / f"operator-pod-{namespace}.log"
        self.status_refresh = status_refresh
        self.installed = False
        self.starts = 0
        self.pod_ip: str | None = None
        self.ready_pod: dict[str, Any] | None = None
        """The pod as it was when it last turned Ready (what a test checks of its spec)."""

    @property
    def fullname(self) -> str:
        return f"{self.release}-modelrollout-operator"

    @property
    def metrics_address(self) -> str:
        return f"{self.pod_ip}:8000"

    def values(self) -> dict[str, Any]:
        repository, _, tag = self.image.rpartition(":")
        return {
            "image": {"repository": repository, "tag": tag, "pullPolicy": "Never"},
            "watchNamespaces": [self.namespace],
            "logFormat": "text",
            "statusRefresh": self.status_refresh,
            "livenessProbe": {"initialDelaySeconds": 5, "periodSeconds": 5},
            "readinessProbe": {"initialDelaySeconds": 1, "periodSeconds": 1},
            **placement(),
        }

    def start(self, timeout: float = 90.0) -> None:
        if not self.installed:
            with tempfile.TemporaryDirectory(prefix="mro-values-") as tmp:
                values = Path(tmp) / "values.json"
                values.write_text(json.dumps(self.values()))
                self._helm(
                    "install", self.release, str(CHART), f"--namespace={self.namespace}", f"--values={values}"
                )
            self.installed = True
        self.starts += 1
        self._wait_ready(timeout)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pod = self._pod()
            if pod is not None:
                conditions = {c["type"]: c["status"] for c in pod["status"].get("conditions") or []}
                if conditions.get("Ready") == "True" and pod["metadata"].get("deletionTimestamp") is None:
                    self.pod_ip = pod["status"].get("podIP")
                    self.ready_pod = pod
                    return
            time.sleep(0.5)
        raise SandboxError(f"the operator pod of {self.release} was not Ready within {timeout:.0f}s")

    def pod(self) -> dict[str, Any] | None:
        return self._pod()

    def _pod(self) -> dict[str, Any] | None:
        found = self._kubectl("get", "pods", f"--namespace={self.namespace}", "-o", "json",
                              f"--selector=app.kubernetes.io/instance={self.release}")  # fmt: skip
        pods = [
            p for p in json.loads(found.stdout)["items"] if p["metadata"].get("deletionTimestamp") is None
        ]
        return pods[0] if pods else None

    def kill(self) -> None:
        """Deletes the pod at once (no grace): its Deployment starts another, as after a node failure."""
        pod = self._pod()
        if pod is not None:
            self._kubectl("delete", "pod", pod["metadata"]["name"], f"--namespace={self.namespace}",
                          "--grace-period=0", "--force", "--wait=false")  # fmt: skip

    def stop(self) -> None:
        if self.installed:
            self._save_log()
            self._helm("uninstall", self.release, f"--namespace={self.namespace}", "--wait", check=False)
            self.installed = False

    @property
    def running(self) -> bool:
        return self.installed and self._pod() is not None

    def _save_log(self) -> None:
        pod = self._pod()
        if pod is not None:
            found = self._kubectl(
                "logs", pod["metadata"]["name"], f"--namespace={self.namespace}", check=False
            )
            self.log.write_text(found.stdout + found.stderr)

    def _kubectl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(tools.binary("kubectl")), f"--kubeconfig={self.kubeconfig}", *args],
            capture_output=True,
            text=True,
        )
        if check and result.returncode != 0:
            raise SandboxError(f"kubectl {' '.join(args[:2])} failed: {result.stderr.strip()}")
        return result

    def _helm(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        with tempfile.TemporaryDirectory(prefix="mro-helm-") as home:
            env = {"HELM_CACHE_HOME": f"{home}/cache", "HELM_CONFIG_HOME": f"{home}/config",
                   "HELM_DATA_HOME": f"{home}/data", "PATH": "/usr/bin:/bin"}  # fmt: skip
            result = subprocess.run(
                [str(tools.binary("helm")), *args, f"--kubeconfig={self.kubeconfig}"],
                capture_output=True,
                text=True,
                env=env,
            )
        if check and result.returncode != 0:
            raise SandboxError(f"helm {args[0]} failed: {result.stderr.strip()}")
        return result
