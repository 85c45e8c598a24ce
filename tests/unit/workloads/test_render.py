"""Tests of the per-version Deployment and Service rendering, names and fingerprints."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter

from modelrollout.api.spec import ModelRolloutSpec, Slice
from modelrollout.identity import TEMPLATE_HASH_ANNOTATION, workload_name
from modelrollout.workloads.render import (
    fingerprint,
    render_deployment,
    render_service,
    serving_container_index,
    template_hash,
)
from tests.support import specs

DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
NAME, NAMESPACE, UID = "recommender", "ml", "0d4c-uid"
DIGEST_IMAGE = "ghcr.io/example/sidecar@sha256:" + "ab" * 32
SLICES: list[dict[str, Any]] = [
    {"name": "ios", "match": {"headers": {"x-platform": {"exact": "ios"}}}},
    {"name": "beta", "match": {"headers": {"x-user": {"prefix": "beta-"}, "x-region": {"regex": "eu-.*"}}}},
]


def full_template() -> dict[str, Any]:
    """A template using many PodSpec features the operator must carry through untouched."""
    return {
        "metadata": {
            "labels": {"team": "ranking", "app.kubernetes.io/name": "overridden"},
            "annotations": {
                "sandbox.modelrollout.io/load-delay": "3s",
                "modelrollout.io/environment-fingerprint": "cuda12.4-torch2.5",
                "prometheus.io/scrape": "true",
            },
        },
        "spec": {
            "nodeSelector": {"gpu": "a100"},
            "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
            "securityContext": {"runAsNonRoot": True},
            "volumes": [{"name": "cache", "emptyDir": {}}],
            "initContainers": [{"name": "fetch", "image": "ghcr.io/example/fetch:2"}],
            "containers": [
                {
                    "name": "sidecar",
                    "image": DIGEST_IMAGE,
                    "ports": [{"containerPort": 9090}],
                    "env": [{"name": "MODEL_URI", "value": "sidecar-keeps-its-own"}],
                },
                {
                    "name": "server",
                    "image": "ghcr.io/example/server:1.0",
                    "args": ["--model-uri=$(MODEL_URI)"],
                    "ports": [{"containerPort": 8080, "name": "http"}],
                    "env": [
                        {"name": "LOG_LEVEL", "value": "info"},
                        {"name": "MODEL_URI", "value": "stale"},
                        {"name": "THREADS", "value": "4"},
                    ],
                    "resources": {"limits": {"cpu": "2", "memory": "4Gi"}},
                    "livenessProbe": {"httpGet": {"path": "/healthz", "port": 8080}},
                    "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}},
                    "volumeMounts": [{"name": "cache", "mountPath": "/cache"}],
                },
            ],
        },
    }


def make_spec(
    template: dict[str, Any] | None = None,
    *,
    slices: list[dict[str, Any]] | None = None,
    readiness: dict[str, Any] | None = None,
    port: int | None = None,
) -> ModelRolloutSpec:
    return specs.parsed(
        specs.rollout_spec(
            template=full_template() if template is None else template,
            replicas=3,
            readiness=readiness or {"modelReadyPath": "/v2/models/recommender/ready", "port": 8080},
            traffic=specs.istio(**({} if port is None else {"port": port})),
            slices=SLICES if slices is None else slices,
            strategy={"canary": {"steps": [{"weight": 10}]}},
            analysis=specs.analysis_with(url="http://prometheus:9090"),
        )
    )


def deployment(
    spec: ModelRolloutSpec | None = None, version: str = "v2", uri: str = "s3://m/v2"
) -> dict[str, Any]:
    return render_deployment(NAME, NAMESPACE, UID, spec or make_spec(), version, uri, 3)


def container(rendered: dict[str, Any], name: str) -> dict[str, Any]:
    containers = rendered["spec"]["template"]["spec"]["containers"]
    return next(c for c in containers if c["name"] == name)


def env_of(item: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in item["env"]}


# Names ------------------------------------------------------------------------------------------------------
def test_workload_name_is_readable_and_hashed() -> None:
    name = workload_name("recommender", "v42")
    assert name.startswith("recommender-v42-")
    assert DNS_1035.fullmatch(name)


def test_workload_names_of_different_rollouts_never_collide() -> None:
    # Both would be "a-b-c" without the hash: two rollouts in one namespace would share a Deployment.
    assert workload_name("a-b", "c") != workload_name("a", "b-c")


def test_workload_name_maps_dots_without_collisions() -> None:
    dotted = workload_name("recommender", "1.2.3")
    dashed = workload_name("recommender", "1-2-3")
    assert DNS_1035.fullmatch(dotted)
    assert dotted.startswith("recommender-1-2-3-")
    assert dashed.startswith("recommender-1-2-3-")
    assert dotted != dashed


def test_workload_name_starts_with_a_letter() -> None:
    name = workload_name("7eleven", "v1")
    assert DNS_1035.fullmatch(name)
    assert name != workload_name("7eleven", "v2")


def test_long_workload_names_are_cut_and_hashed() -> None:
    rollout = "a-very-long-rollout-name-for-the-ranking-model-of-the-homepage"
    first = workload_name(rollout, "2024.11.05-build.1234567890")
    second = workload_name(rollout, "2024.11.05-build.1234567891")
    for name in (first, second):
        assert len(name) <= 63
        assert DNS_1035.fullmatch(name)
    assert first != second
    assert workload_name(rollout, "2024.11.05-build.1234567890") == first


rollout_names = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,80}[a-z0-9])?(\.[a-z0-9]{1,10}){0,2}", fullmatch=True)
versions = st.from_regex(r"[a-z0-9]([-a-z0-9.]{0,38}[a-z0-9])?", fullmatch=True)


@given(rollout_names, versions, versions)
def test_workload_names_are_valid_and_distinct(rollout: str, version: str, other: str) -> None:
    name = workload_name(rollout, version)
    assert len(name) <= 63
    assert DNS_1035.fullmatch(name), name
    assert workload_name(rollout, version) == name
    if other != version:
        assert workload_name(rollout, other) != name


# Deployment -------------------------------------------------------------------------------------------------
def test_deployment_identity() -> None:
    rendered = deployment(version="v2.1", uri="s3://m/v2.1")
    meta = rendered["metadata"]
    assert rendered["apiVersion"] == "apps/v1"
    assert rendered["kind"] == "Deployment"
    assert meta["name"] == workload_name(NAME, "v2.1")
    assert meta["namespace"] == NAMESPACE
    expected_labels = {
        "app.kubernetes.io/managed-by": "modelrollout",
        "modelrollout.io/rollout": NAME,
        "modelrollout.io/version": "v2.1",
        "app.kubernetes.io/name": "recommender",
        "app.kubernetes.io/version": "v2.1",
    }
    assert meta["labels"] == expected_labels
    assert meta["ownerReferences"] == [
        {
            "apiVersion": "modelrollout.io/v1alpha1",
            "kind": "ModelRollout",
            "name": NAME,
            "uid": UID,
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert rendered["spec"]["replicas"] == 3
    selector = rendered["spec"]["selector"]["matchLabels"]
    assert selector == {"modelrollout.io/rollout": NAME, "modelrollout.io/version": "v2.1"}
    pod_labels = rendered["spec"]["template"]["metadata"]["labels"]
    assert pod_labels == {"team": "ranking", **expected_labels}
    assert selector.items() <= pod_labels.items()


def test_model_env_on_the_serving_container_only() -> None:
    rendered = deployment(version="v2.1", uri="s3://m/v2.1")
    server = container(rendered, "server")
    names = [e["name"] for e in server["env"]]
    # Ours first (so the user's $(MODEL_URI) resolves), replaced entries gone, the rest kept in order.
    assert names == [
        "MODEL_NAME",
        "MODEL_VERSION",
        "MODEL_URI",
        "MODELROLLOUT_SLICES",
        "MODELROLLOUT_PORT",
        "MODELROLLOUT_READY_PATH",
        "LOG_LEVEL",
        "THREADS",
    ]
    env = env_of(server)
    assert env["MODELROLLOUT_PORT"] == str(server["readinessProbe"]["httpGet"]["port"])
    assert env["MODELROLLOUT_READY_PATH"] == server["readinessProbe"]["httpGet"]["path"]
    assert env["MODEL_NAME"] == "recommender"
    assert env["MODEL_VERSION"] == "v2.1"
    assert env["MODEL_URI"] == "s3://m/v2.1"
    assert env["LOG_LEVEL"] == "info"
    assert container(rendered, "sidecar")["env"] == [{"name": "MODEL_URI", "value": "sidecar-keeps-its-own"}]


def test_slices_env_is_the_spec_slices_in_route_order() -> None:
    spec = make_spec()
    raw = env_of(container(deployment(spec), "server"))["MODELROLLOUT_SLICES"]
    parsed = TypeAdapter(list[Slice]).validate_json(raw)
    assert parsed == spec.slices
    assert [s["name"] for s in json.loads(raw)] == ["ios", "beta"]
    assert json.loads(raw)[1]["match"]["headers"]["x-region"] == {"regex": "eu-.*"}
    no_slices = deployment(make_spec(slices=[]))
    assert env_of(container(no_slices, "server"))["MODELROLLOUT_SLICES"] == "[]"


def test_serving_container_falls_back_to_the_first() -> None:
    template = full_template()
    template["spec"]["containers"][1]["ports"] = [{"containerPort": 8000}]
    rendered = deployment(make_spec(template))
    assert "MODEL_VERSION" in env_of(container(rendered, "sidecar"))
    assert "startupProbe" in container(rendered, "sidecar")
    assert "startupProbe" not in container(rendered, "server")
    assert serving_container_index([{"name": "a"}, {"name": "b", "ports": [{"containerPort": 1}]}], 1) == 1
    assert serving_container_index([{"name": "a", "ports": None}], 1) == 0


def test_probes_watch_the_model_and_budget_the_load_timeout() -> None:
    server = container(deployment(), "server")
    http_get = {"path": "/v2/models/recommender/ready", "port": 8080}
    assert server["startupProbe"] == {"httpGet": http_get, "periodSeconds": 5, "failureThreshold": 120}
    assert server["readinessProbe"] == {"httpGet": http_get, "periodSeconds": 5}
    assert server["livenessProbe"] == {"httpGet": {"path": "/healthz", "port": 8080}}
    assert "startupProbe" not in container(deployment(), "sidecar")


@pytest.mark.parametrize(
    ("timeout", "period", "expected_period", "expected_threshold"),
    [
        ("10m", "5s", 5, 120),
        ("45s", "10s", 10, 5),  # rounded up: a probe never gives up before loadTimeout
        ("1m", "1.5s", 2, 30),  # periodSeconds is whole: the threshold follows the rounded period
        ("2s", "1.5s", 2, 1),
        ("1s", "10s", 10, 1),
    ],
)
def test_startup_budget(timeout: str, period: str, expected_period: int, expected_threshold: int) -> None:
    spec = make_spec(readiness={"port": 8080, "loadTimeout": timeout, "probePeriod": period})
    probe = container(deployment(spec), "server")["startupProbe"]
    assert (probe["periodSeconds"], probe["failureThreshold"]) == (expected_period, expected_threshold)
    assert probe["httpGet"] == {"path": "/ready", "port": 8080}


def test_everything_else_in_the_template_is_preserved() -> None:
    source = full_template()
    rendered = deployment(make_spec(source))
    pod = rendered["spec"]["template"]
    assert pod["metadata"]["annotations"] == source["metadata"]["annotations"]
    for key in ("nodeSelector", "tolerations", "securityContext", "volumes", "initContainers"):
        assert pod["spec"][key] == source["spec"][key]
    server, original = container(rendered, "server"), source["spec"]["containers"][1]
    for key in ("image", "args", "ports", "resources", "volumeMounts", "livenessProbe"):
        assert server[key] == original[key]
    assert container(rendered, "sidecar") == source["spec"]["containers"][0]


def test_rendering_never_mutates_the_input() -> None:
    spec = make_spec()
    before = copy.deepcopy(spec.template)
    first = deployment(spec)
    render_service(NAME, NAMESPACE, UID, spec, "v2")
    fingerprint(spec, "v2", "s3://m/v2")
    assert spec.template == before
    first["spec"]["template"]["metadata"]["labels"]["x"] = "y"
    container(first, "server")["env"].append({"name": "X", "value": "1"})
    assert spec.template == before
    assert deployment(spec) == deployment(spec)


def test_template_hash() -> None:
    spec = make_spec()
    rendered = deployment(spec)
    digest = rendered["metadata"]["annotations"][TEMPLATE_HASH_ANNOTATION]
    assert re.fullmatch(r"[0-9a-f]{16}", digest)
    assert digest == template_hash(spec, "v2", "s3://m/v2")
    # The same version of another rollout runs the same environment.
    assert render_deployment("other", NAMESPACE, UID, spec, "v2", "s3://m/v2", 1)["metadata"][
        "annotations"
    ] == {TEMPLATE_HASH_ANNOTATION: digest}
    assert template_hash(spec, "v3", "s3://m/v2") != digest
    assert template_hash(spec, "v2", "s3://m/v3") != digest
    changed = full_template()
    changed["spec"]["containers"][1]["resources"]["limits"]["cpu"] = "3"
    assert template_hash(make_spec(changed), "v2", "s3://m/v2") != digest
    assert template_hash(make_spec(slices=[]), "v2", "s3://m/v2") != digest


# Service ----------------------------------------------------------------------------------------------------
def test_service() -> None:
    service = render_service(NAME, NAMESPACE, UID, make_spec(port=80), "v2.1")
    assert service["apiVersion"] == "v1"
    assert service["kind"] == "Service"
    assert service["metadata"]["name"] == workload_name(NAME, "v2.1")
    assert service["metadata"]["labels"]["modelrollout.io/version"] == "v2.1"
    assert service["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "modelrollout"
    assert service["metadata"]["ownerReferences"][0]["uid"] == UID
    assert service["spec"]["selector"] == {"modelrollout.io/rollout": NAME, "modelrollout.io/version": "v2.1"}
    assert service["spec"]["ports"] == [
        {"name": "http", "appProtocol": "http", "protocol": "TCP", "port": 80, "targetPort": 8080}
    ]
    default_port = render_service(NAME, NAMESPACE, UID, make_spec(), "v2")["spec"]["ports"][0]
    assert (default_port["port"], default_port["targetPort"]) == (8080, 8080)


def test_service_selects_what_the_deployment_runs() -> None:
    spec = make_spec()
    service = render_service(NAME, NAMESPACE, UID, spec, "v2")
    pod_labels = deployment(spec)["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert service["metadata"]["name"] == deployment(spec)["metadata"]["name"]


# Fingerprint ------------------------------------------------------------------------------------------------
def test_fingerprint() -> None:
    spec = make_spec()
    found = fingerprint(spec, "v2", "s3://m/v2")
    assert found.images == [DIGEST_IMAGE, "ghcr.io/example/server:1.0", "ghcr.io/example/fetch:2"]
    assert found.model_uri == "s3://m/v2"
    assert found.environment == "cuda12.4-torch2.5"
    assert found.template_hash == deployment(spec)["metadata"]["annotations"][TEMPLATE_HASH_ANNOTATION]


def test_fingerprint_without_environment_annotation() -> None:
    template = {"spec": {"containers": [{"name": "server", "image": "server:1"}]}}
    found = fingerprint(make_spec(template), "v1", "s3://m/v1")
    assert found.environment is None
    assert found.images == ["server:1"]


# Bad templates ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("template", "message"),
    [
        ({}, "spec.template.spec: required"),
        ({"spec": {}}, "spec.template.spec.containers: required"),
        ({"spec": {"containers": []}}, "spec.template.spec.containers: required"),
        ({"spec": {"containers": [{"name": "server"}]}}, "spec.template.spec.containers[0].image: required"),
        (
            {"spec": {"containers": [{"name": "a", "image": "a:1"}, {"name": "b", "image": " "}]}},
            "spec.template.spec.containers[1].image: required",
        ),
        ({"spec": {"containers": [{"image": "a:1"}]}}, "spec.template.spec.containers[0].name: required"),
        ({"spec": {"containers": ["server"]}}, "spec.template.spec.containers[0]: must be an object"),
        (
            {"spec": {"containers": [{"name": "a", "image": "a:1", "env": {"A": "1"}}]}},
            "spec.template.spec.containers[0].env: must be a list",
        ),
        (
            {"metadata": {"labels": {"a": 1}}, "spec": {"containers": [{"name": "a", "image": "a:1"}]}},
            "spec.template.metadata.labels: must map names to strings",
        ),
    ],
)
def test_bad_templates_name_the_field(template: dict[str, Any], message: str) -> None:
    spec = make_spec(template)
    for render in (
        lambda: deployment(spec),
        lambda: fingerprint(spec, "v2", "s3://m/v2"),
    ):
        with pytest.raises(ValueError, match=re.escape(message)):
            render()


def test_negative_replicas_are_refused() -> None:
    with pytest.raises(ValueError, match="replicas"):
        render_deployment(NAME, NAMESPACE, UID, make_spec(), "v2", "s3://m/v2", -1)
