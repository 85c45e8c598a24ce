"""The chart against a real API server: server-side dry-run of every rendered object, then a real install."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import Cluster
from tests.support.cluster import installed, render_for

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    "extra",
    [{}, {"watch": True, "grafanaDashboard": {"enabled": True}, "logFormat": "text"}],
    ids=["cluster-wide", "namespaced"],
)
def test_rendered_manifests_pass_server_side_dry_run(
    cluster: Cluster, namespace: str, extra: dict[str, Any], tmp_path: Path
) -> None:
    values = {k: v for k, v in extra.items() if k != "watch"}
    if extra.get("watch"):
        values["watchNamespaces"] = [namespace, "default"]
    manifests = render_for(namespace, values, tmp_path)
    kinds = sorted({doc["kind"] for doc in yaml.safe_load_all(manifests) if doc})
    expected = {"CustomResourceDefinition", "Deployment", "PodDisruptionBudget", "Service", "ServiceAccount"}
    assert expected <= set(kinds)
    result = cluster.kubectl(
        "apply", "--server-side", "--force-conflicts", "--dry-run=server", "-f", "-", stdin=manifests
    )
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert len(lines) == sum(1 for doc in yaml.safe_load_all(manifests) if doc), result.stdout
    assert all("(server dry run)" in line for line in lines), result.stdout


def test_helm_install_creates_the_release_and_the_pod_template_values_asked_for(
    cluster: Cluster, namespace: str, tmp_path: Path
) -> None:
    values = {
        "image": {
            "repository": "registry.invalid/modelrollout-operator",
            "tag": "test",
            "pullPolicy": "Never",
        },
        "watchNamespaces": [namespace],
        "logFormat": "text",
        "statusRefresh": "30s",
        "nodeSelector": {"type": "kwok"},
        "tolerations": [{"key": "kwok.x-k8s.io/node", "operator": "Exists", "effect": "NoSchedule"}],
        "resources": {"requests": {"cpu": "50m", "memory": "96Mi"}, "limits": {"memory": "256Mi"}},
        "podLabels": {"team": "ml-platform"},
        "grafanaDashboard": {"enabled": True},
    }
    with installed(cluster.kubeconfig, namespace, values, tmp_path) as release:
        assert "NOTES:" in release.install_output
        assert f"It reconciles ModelRollouts in: {namespace}" in release.install_output
        fullname = release.service_account

        def get(kind: str, name: str, ns: str | None = namespace) -> dict[str, Any]:
            args = ["get", kind, name, "-o", "json"] + ([f"--namespace={ns}"] if ns else [])
            return dict(json.loads(cluster.kubectl(*args).stdout))

        for kind, name in [
            ("serviceaccount", fullname),
            ("service", f"{fullname}-metrics"),
            ("poddisruptionbudget", fullname),
            ("configmap", f"{fullname}-dashboard"),
            ("role", fullname),
            ("rolebinding", fullname),
        ]:
            assert get(kind, name)["metadata"]["labels"]["app.kubernetes.io/instance"] == release.name
        for kind in ("clusterrole", "clusterrolebinding"):
            cluster_name = f"{namespace}-{fullname}-discovery"
            assert get(kind, cluster_name, None)["metadata"]["name"] == cluster_name

        deployment = get("deployment", fullname)
        pod = deployment["spec"]["template"]["spec"]
        [main] = pod["containers"]
        assert main["image"] == "registry.invalid/modelrollout-operator:test"
        assert main["imagePullPolicy"] == "Never"
        assert main["command"] == ["modelrollout", "operator"]
        assert f"--namespace={namespace}" in main["args"]
        assert "--log-format=text" in main["args"]
        assert "--status-refresh=30s" in main["args"]
        assert main["resources"] == values["resources"]
        assert main["securityContext"]["readOnlyRootFilesystem"] is True
        assert main["securityContext"]["capabilities"] == {"drop": ["ALL"]}
        assert main["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert pod["nodeSelector"] == {"type": "kwok"}
        assert pod["tolerations"] == values["tolerations"]
        assert pod["serviceAccountName"] == fullname
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert deployment["spec"]["template"]["metadata"]["labels"]["team"] == "ml-platform"
        assert deployment["spec"]["replicas"] == 2  # leader election by default

        status = json.loads(
            cluster.kubectl("get", "crd", "modelrollouts.modelrollout.io", "-o", "json").stdout
        )
        assert status["spec"]["names"]["kind"] == "ModelRollout"
    gone = cluster.kubectl("get", "clusterrole", f"{namespace}-{fullname}-discovery", check=False)
    assert gone.returncode != 0, "uninstall removes the cluster-scoped objects too"
