"""The sandbox's real node (a kubelet on containerd and runc): the operator as a pod from the Helm chart, and
model-load probes run by the kubelet against model servers that are still loading.

Marker `realnode`: `make test` runs these (as root, with containerd, runc and the CNI plugins installed by
`.ci/run`); where containers cannot run, they fail saying why instead of passing. `-m "not realnode"` leaves
them out.
"""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path

import pytest
from rich.console import Console

from modelrollout.plan.capacity import capacity_weight
from modelrollout.sandbox.demo import DemoResult, DemoRunner
from modelrollout.sandbox.operator_pod import OperatorPod
from modelrollout.sandbox.realnode import NODE_NAME, RealNodeState, RealNodeUnavailable
from modelrollout.sandbox.tools import ToolError
from tests.conftest import Cluster

# The first test also starts the real node (and imports the images into its containerd).
pytestmark = [pytest.mark.e2e, pytest.mark.realnode, pytest.mark.timeout(1200)]
SCENARIOS = Path(__file__).resolve().parents[2] / "examples" / "scenarios"
CHART_SERVICE_ACCOUNT_SUFFIX = "modelrollout-operator"


@pytest.fixture(scope="session")
def real_node(cluster: Cluster) -> RealNodeState:
    sandbox = cluster.require_sandbox()
    try:
        return sandbox.start_real_node()
    except (RealNodeUnavailable, ToolError) as error:
        pytest.fail(f"{error} (deselect with -m 'not realnode' to run without containers)", pytrace=False)


def run(
    cluster: Cluster, name: str, tmp_path: Path, operator: str = "process"
) -> tuple[DemoResult, DemoRunner]:
    runner = DemoRunner(
        SCENARIOS / f"{name}.yaml",
        sandbox=cluster.require_sandbox(),
        namespace=f"real-{name}-{secrets.token_hex(2)}",
        console=Console(file=(tmp_path / f"{name}.log").open("w"), width=120),
        reports=tmp_path,
        live=False,
        operator=operator,  # type: ignore[arg-type]
    )
    result = asyncio.run(runner.run())
    assert result.ok, (
        f"{name}: {result.problems}; events {result.events}; message {result.status.get('message')}"
    )
    return result, runner


def test_operator_pod_from_the_helm_chart_promotes_one_rollout_and_rolls_back_another(
    cluster: Cluster, real_node: RealNodeState, tmp_path: Path
) -> None:
    healthy, runner = run(cluster, "healthy", tmp_path, operator="pod")
    assert healthy.status["phase"] == "Succeeded"
    assert healthy.status["stableVersion"] == "v2"
    assert isinstance(runner.operator, OperatorPod)
    pod = runner.operator.ready_pod
    assert pod is not None, "the operator pod turned Ready"
    spec = pod["spec"]
    assert spec["nodeName"] == NODE_NAME, "the kubelet of the real node ran it"
    assert spec["serviceAccountName"].endswith(CHART_SERVICE_ACCOUNT_SUFFIX), "the chart's ServiceAccount"
    container = spec["containers"][0]
    assert container["image"].startswith("localhost/modelrollout/operator:")
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["runAsNonRoot"] is True
    assert (security.get("runAsUser") or spec.get("securityContext", {}).get("runAsUser") or 10001) != 0
    assert pod["status"]["containerStatuses"][0]["ready"] is True

    regression, _ = run(cluster, "error-regression", tmp_path, operator="pod")
    assert regression.status["phase"] == "RolledBack"
    assert regression.status["stableVersion"] == "v1"
    failing = {s["name"] for s in regression.status.get("slices", []) if s.get("verdict") == "Fail"}
    assert failing == {"android"}, "the pod's operator names the regressed slice"


def test_kubelet_probes_gate_traffic_on_model_load(
    cluster: Cluster, real_node: RealNodeState, tmp_path: Path
) -> None:
    """v2's 4 replicas take 20-40 s each to load; one replica's load fails. The kubelet's startup and
    readiness probes decide which replicas are model-ready; every VirtualService revision stays within
    what those replicas carry, and the failed replica never receives a request."""
    result, runner = run(cluster, "real-node-cold-start", tmp_path)
    spec = runner.scenario.rollout.spec
    assert result.status["phase"] == "Succeeded"
    assert result.status["stableVersion"] == "v2"
    assert result.revisions, "the VirtualService's revisions were recorded"
    for revision in result.revisions:
        cap = capacity_weight(spec, revision.candidate_ready)
        over = {name: w for name, w in revision.weights.items() if w > cap}
        assert not over, (
            f"revision {revision.resource_version} at {revision.t:.1f}s routed {over} to v2 with only "
            f"{revision.candidate_ready} model-ready replicas (capacity {cap}%)"
        )
    partial = [
        r for r in result.revisions if 0 < r.candidate_ready < spec.replicas and max(r.weights.values()) > 0
    ]
    assert partial, "the canary ran while some replicas were still loading (capacity held the weight)"

    pods = result.pods
    assert pods is not None
    assert len(pods.failed_load) == 1
    failed = (pods.failed_load[0], 0)  # its first run, whose load failed
    assert failed not in pods.ever_ready, "the kubelet never marked the failed replica Ready"
    assert pods.sent.get(failed, 0) == 0, "the failed replica never received a request"
    served = {key for key, count in pods.sent.items() if count > 0}
    assert served <= pods.ever_ready, "requests went only to replicas the kubelet had marked Ready"
