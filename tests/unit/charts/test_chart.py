"""The operator's Helm chart: lint, rendering per values, least-privilege RBAC and the schema's refusals."""

from __future__ import annotations

import json
from typing import Any

import pytest

from modelrollout.cli.main import build_parser
from tests.support.helm import CHART, REPO, by_kind, helm, one, render

NAMESPACED = {"watchNamespaces": ["ml", "ml-staging"]}
EVERYTHING_ON = {
    "serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
    "grafanaDashboard": {"enabled": True},
    "podDisruptionBudget": {"enabled": True, "maxUnavailable": 1},
}

# What the operator may do in a namespace it watches, derived from modelrollout.kube (every call the operator
# makes) and kopf (list/watch of the resource, metadata and status patches, events). Changing it must be a
# decision: update the chart's rules, this table and docs/operations.md together.
NAMESPACED_RULES = {
    ("modelrollout.io", "modelrollouts"): {"get", "list", "watch", "patch"},
    ("modelrollout.io", "modelrollouts/status"): {"patch"},
    ("modelrollout.io", "modelrollouts/finalizers"): {"update"},
    ("apps", "deployments"): {"get", "list", "watch", "create", "patch", "delete"},
    ("apps", "deployments/scale"): {"patch"},
    ("", "services"): {"get", "create", "patch", "delete"},
    ("networking.istio.io", "virtualservices"): {"get", "create", "patch", "delete"},
    ("gateway.networking.k8s.io", "httproutes"): {"get", "create", "patch", "delete"},
    ("", "events"): {"create"},
}
# What kopf reads cluster-wide: CRDs always; namespaces only when it serves a list of namespaces.
CRD_RULE = {("apiextensions.k8s.io", "customresourcedefinitions"): {"list", "watch"}}
NAMESPACE_RULE = {("", "namespaces"): {"list", "watch"}}


def rules_of(role: dict[str, Any]) -> dict[tuple[str, str], set[str]]:
    out: dict[tuple[str, str], set[str]] = {}
    for rule in role["rules"]:
        assert "nonResourceURLs" not in rule
        assert not rule.get("resourceNames"), "rules are per resource type"
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                out.setdefault((group, resource), set()).update(rule["verbs"])
    return out


def container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    assert len(pod["containers"]) == 1
    return dict(pod["containers"][0])


# The CRD copy ------------------------------------------------------------------------------------------------
def test_the_charts_crd_is_a_byte_for_byte_copy_of_the_generated_crd() -> None:
    generated = (REPO / "crds" / "modelrollout.yaml").read_bytes()
    shipped = (CHART / "crds" / "modelrollout.yaml").read_bytes()
    assert shipped == generated, (
        "charts/modelrollout-operator/crds/modelrollout.yaml differs from crds/modelrollout.yaml: after "
        "`make crds`, copy it: cp crds/modelrollout.yaml charts/modelrollout-operator/crds/modelrollout.yaml"
    )


def test_chart_app_version_is_the_package_version() -> None:
    import tomllib

    import yaml

    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert chart["appVersion"] == project["version"] == "0.1.0"


# Lint --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "values", [{}, NAMESPACED, EVERYTHING_ON], ids=["default", "namespaced", "everything"]
)
def test_helm_lint_strict_passes(values: dict[str, Any], tmp_path: Any) -> None:
    path = tmp_path / "values.json"
    path.write_text(json.dumps(values))
    result = helm("lint", "--strict", str(CHART), f"--values={path}")
    assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout
    assert "[WARNING]" not in result.stdout
    assert "[ERROR]" not in result.stdout


LEADER_ROLE = "mro-modelrollout-operator-leader-election"


# The Deployment ----------------------------------------------------------------------------------------------
def test_the_deployment_runs_one_hardened_operator() -> None:
    objects = render()
    deployment = one(objects, "Deployment")
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"] == {"type": "RollingUpdate"}
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--leader-elect" in args, "two replicas reconcile only with leader election"
    lease = next(
        o for o in objects if o["kind"] == "Role" and o["metadata"]["name"].endswith("-leader-election")
    )
    assert lease["rules"] == [
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "create", "update"]}
    ]
    anti = deployment["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
    assert anti["preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"]["topologyKey"] == (
        "kubernetes.io/hostname"
    )
    single = one(render({"leaderElection": {"enabled": False}}), "Deployment")
    assert single["spec"]["replicas"] == 1
    assert single["spec"]["strategy"] == {"type": "Recreate"}, (
        "two operators without a Lease must never overlap"
    )
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == one(objects, "ServiceAccount")["metadata"]["name"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    main = container(objects)
    assert main["image"] == "ghcr.io/modelrollout/modelrollout-operator:0.1.0"
    security = main["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    assert main["resources"]["requests"]
    assert main["resources"]["limits"]["memory"]
    ports = {p["name"]: p["containerPort"] for p in main["ports"]}
    assert ports == {"metrics": 8000, "health": 8080}
    for probe in ("livenessProbe", "readinessProbe"):
        assert main[probe]["httpGet"] == {"path": "/healthz", "port": "health"}
    mounts = {m["name"]: m["mountPath"] for m in main["volumeMounts"]}
    assert mounts == {"tmp": "/tmp"}
    assert next(v for v in pod["volumes"] if v["name"] == "tmp")["emptyDir"] == {"sizeLimit": "64Mi"}


def test_the_operator_arguments_are_accepted_by_the_real_cli() -> None:
    main = container(render({"logFormat": "text", "statusRefresh": "90s", "verbose": True}))
    assert main["command"] == ["modelrollout", "operator"]
    args = build_parser().parse_args([main["command"][1], *main["args"]])
    assert args.command == "operator"
    assert args.metrics_address == "0.0.0.0:8000"
    assert args.health_address == "0.0.0.0:8080"
    assert args.log_format == "text"
    assert args.status_refresh == "90s"
    assert args.verbose is True
    assert args.namespace is None, "no --namespace: cluster-wide"


def test_watch_namespaces_become_namespace_flags() -> None:
    main = container(render({**NAMESPACED, "extraArgs": ["--kubeconfig=/etc/kube/config"]}))
    args = build_parser().parse_args(["operator", *main["args"]])
    assert args.namespace == ["ml", "ml-staging"]
    assert args.kubeconfig == "/etc/kube/config"


def test_values_reach_the_pod_template() -> None:
    values = {
        "image": {
            "repository": "registry.example/mro",
            "digest": "sha256:" + "a" * 64,
            "pullPolicy": "Always",
        },
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "ml", "operator": "Exists", "effect": "NoSchedule"}],
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["system"]}]}
                    ]
                }
            }
        },
        "priorityClassName": "system-cluster-critical",
        "podAnnotations": {"example.com/team": "ml-platform"},
        "extraEnv": [{"name": "TZ", "value": "UTC"}],
        "metrics": {"port": 9100},
        "health": {"port": 9101},
    }
    objects = render(values)
    pod = one(objects, "Deployment")["spec"]["template"]
    main = container(objects)
    assert main["image"] == "registry.example/mro@sha256:" + "a" * 64
    assert main["imagePullPolicy"] == "Always"
    assert pod["spec"]["nodeSelector"] == values["nodeSelector"]
    assert pod["spec"]["tolerations"] == values["tolerations"]
    assert pod["spec"]["affinity"] == values["affinity"]
    assert pod["spec"]["priorityClassName"] == "system-cluster-critical"
    assert pod["metadata"]["annotations"] == {"example.com/team": "ml-platform"}
    assert main["env"] == [{"name": "TZ", "value": "UTC"}]
    assert {p["name"]: p["containerPort"] for p in main["ports"]} == {"metrics": 9100, "health": 9101}
    args = build_parser().parse_args(["operator", *main["args"]])
    assert (args.metrics_address, args.health_address) == ("0.0.0.0:9100", "0.0.0.0:9101")
    assert one(objects, "Service")["spec"]["ports"][0]["port"] == 9100


def test_every_object_carries_the_standard_labels() -> None:
    for obj in render({**NAMESPACED, **EVERYTHING_ON}):
        labels = obj["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "modelrollout-operator", obj["kind"]
        assert labels["app.kubernetes.io/instance"] == "mro"
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        assert labels["app.kubernetes.io/version"] == "0.1.0"
        assert labels["helm.sh/chart"] == "modelrollout-operator-0.1.0"


# RBAC --------------------------------------------------------------------------------------------------------
def test_cluster_wide_mode_grants_exactly_the_derived_rules_in_one_cluster_role() -> None:
    objects = render()
    assert [r["metadata"]["name"] for r in by_kind(objects, "Role")] == [LEADER_ROLE]  # only the Lease's
    assert [b["metadata"]["name"] for b in by_kind(objects, "RoleBinding")] == [LEADER_ROLE]
    role = one(objects, "ClusterRole")
    assert rules_of(role) == {**NAMESPACED_RULES, **CRD_RULE}
    binding = one(objects, "ClusterRoleBinding")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": "modelrollout-system-mro-modelrollout-operator",
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "mro-modelrollout-operator", "namespace": "modelrollout-system"}
    ]


def test_namespaced_mode_grants_a_role_per_namespace_and_only_reads_cluster_wide() -> None:
    objects = render(NAMESPACED)
    roles = {
        r["metadata"]["namespace"]: r
        for r in by_kind(objects, "Role")
        if r["metadata"]["name"] != LEADER_ROLE
    }
    assert set(roles) == {"ml", "ml-staging"}
    for role in roles.values():
        assert rules_of(role) == NAMESPACED_RULES
    bindings = {
        b["metadata"]["namespace"]: b
        for b in by_kind(objects, "RoleBinding")
        if b["metadata"]["name"] != LEADER_ROLE
    }
    assert set(bindings) == {"ml", "ml-staging"}
    for binding in bindings.values():
        assert binding["roleRef"]["kind"] == "Role"
        assert binding["subjects"][0]["namespace"] == "modelrollout-system"
    cluster_role = one(objects, "ClusterRole")
    assert rules_of(cluster_role) == {**CRD_RULE, **NAMESPACE_RULE}
    assert cluster_role["metadata"]["name"] == "modelrollout-system-mro-modelrollout-operator-discovery"
    assert one(objects, "ClusterRoleBinding")["roleRef"]["name"] == cluster_role["metadata"]["name"]


def test_two_releases_of_one_name_in_two_namespaces_do_not_share_cluster_scoped_objects() -> None:
    team_a = {
        o["metadata"]["name"]
        for o in render(NAMESPACED, namespace="team-a")
        if o["kind"].startswith("Cluster")
    }
    team_b = {
        o["metadata"]["name"]
        for o in render(NAMESPACED, namespace="team-b")
        if o["kind"].startswith("Cluster")
    }
    assert team_a
    assert not team_a & team_b


@pytest.mark.parametrize("values", [{}, NAMESPACED], ids=["cluster-wide", "namespaced"])
def test_no_rule_touches_secrets_or_uses_wildcards(values: dict[str, Any]) -> None:
    objects = render(values)
    for role in by_kind(objects, "ClusterRole") + by_kind(objects, "Role"):
        for (group, resource), verbs in rules_of(role).items():
            assert "*" not in verbs
            assert "*" not in (group, resource)
            assert resource not in {"secrets", "pods/exec", "serviceaccounts/token", "clusterroles", "roles"}
            assert not verbs & {"escalate", "bind", "impersonate", "deletecollection"}


def test_rbac_and_service_account_can_be_left_to_a_platform_team() -> None:
    objects = render(
        {"rbac": {"create": False}, "serviceAccount": {"create": False, "name": "platform-made"}}
    )
    kinds = {o["kind"] for o in objects}
    assert not kinds & {"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "ServiceAccount"}
    assert one(objects, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == "platform-made"


# Optional objects ------------------------------------------------------------------------------------------
def test_the_disruption_budget_never_blocks_a_drain_of_the_single_replica() -> None:
    pdb = one(render(), "PodDisruptionBudget")
    assert pdb["spec"]["maxUnavailable"] == 1
    assert "minAvailable" not in pdb["spec"]
    assert (
        pdb["spec"]["selector"]["matchLabels"]
        == one(render(), "Deployment")["spec"]["selector"]["matchLabels"]
    )


def test_service_monitor_is_off_by_default_and_scrapes_the_metrics_port_with_its_labels() -> None:
    assert not by_kind(render(), "ServiceMonitor")
    objects = render(EVERYTHING_ON)
    monitor = one(objects, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    endpoint = monitor["spec"]["endpoints"][0]
    assert endpoint["port"] == "metrics"
    assert endpoint["honorLabels"] is True
    service = one(objects, "Service")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert service["spec"]["selector"] == one(objects, "Deployment")["spec"]["selector"]["matchLabels"]


def test_the_dashboard_config_map_carries_the_dashboard_file() -> None:
    assert not by_kind(render(), "ConfigMap")
    config_map = one(render(EVERYTHING_ON), "ConfigMap")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    shipped = json.loads((CHART / "dashboards" / "modelrollout.json").read_text())
    assert json.loads(config_map["data"]["modelrollout.json"]) == shipped


# The schema ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"logFormat": "xml"}, "/logFormat"),
        ({"podSecurityContext": {"runAsUser": 0}}, "/podSecurityContext/runAsUser"),
        ({"podSecurityContext": {"runAsNonRoot": False}}, "/podSecurityContext/runAsNonRoot"),
        ({"watchNamespaces": ["ML"]}, "/watchNamespaces/0"),
        ({"watchNamespace": ["ml"]}, "watchNamespace"),
        ({"statusRefresh": "a minute"}, "/statusRefresh"),
        ({"extraArgs": ["operator"]}, "/extraArgs/0"),
        ({"podDisruptionBudget": {"minAvailable": 1}}, "minAvailable"),
        ({"podDisruptionBudget": {"maxUnavailable": 0}}, "/podDisruptionBudget/maxUnavailable"),
        ({"image": {"repository": "x", "pullPolicy": "Sometimes"}}, "/image/pullPolicy"),
        ({"image": {"repository": "x", "pullPolicy": "Always", "digest": "latest"}}, "/image/digest"),
    ],
)
def test_the_schema_refuses_bad_values(values: dict[str, Any], complaint: str, tmp_path: Any) -> None:
    path = tmp_path / "values.json"
    path.write_text(json.dumps(values))
    result = helm("template", "mro", str(CHART), f"--values={path}", "--kube-version=v1.35.4", check=False)
    assert result.returncode != 0
    assert "don't meet the specifications of the schema" in result.stderr
    assert complaint in result.stderr
