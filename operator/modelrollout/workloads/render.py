"""Pure rendering of the per-version Deployment and Service of a ModelRollout.

Every model version runs in its own Deployment and is reached through its own Service (the destination the
Istio routes name). The user's pod template is kept as written; the operator adds identity labels, the MODEL_*
environment, and model-load probes on the serving container. Nothing here does I/O or mutates its inputs.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
from typing import Any

from modelrollout.api.common import seconds
from modelrollout.api.spec import ModelRolloutSpec
from modelrollout.api.status import Fingerprint
from modelrollout.errors import InvalidTemplate
from modelrollout.identity import (
    APP_NAME_LABEL,
    APP_VERSION_LABEL,
    ENVIRONMENT_ANNOTATION,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    ROLLOUT_LABEL,
    TEMPLATE_HASH_ANNOTATION,
    VERSION_LABEL,
    owner_reference,
    workload_name,
)

ENV_MODEL_NAME = "MODEL_NAME"
ENV_MODEL_VERSION = "MODEL_VERSION"
ENV_MODEL_URI = "MODEL_URI"
ENV_SLICES = "MODELROLLOUT_SLICES"
ENV_PORT = "MODELROLLOUT_PORT"
ENV_READY_PATH = "MODELROLLOUT_READY_PATH"

SERVICE_PORT_NAME = "http"


# Names and identity ---------------------------------------------------------------------------------------
def selector_labels(rollout_name: str, version: str) -> dict[str, str]:
    """The labels that select one version's pods (Deployment selector and Service selector)."""
    return {ROLLOUT_LABEL: rollout_name, VERSION_LABEL: version}


def version_labels(rollout_name: str, spec: ModelRolloutSpec, version: str) -> dict[str, str]:
    """Labels on every object generated for a version.

    app.kubernetes.io/name and /version are what Istio derives its canonical service and revision from, so
    Istio's `destination_version` equals the model version.
    """
    return {
        MANAGED_BY_LABEL: MANAGED_BY,
        ROLLOUT_LABEL: rollout_name,
        VERSION_LABEL: version,
        APP_NAME_LABEL: spec.model.name,
        APP_VERSION_LABEL: version,
    }


def stable_hash(value: Any) -> str:
    """A short hash of a JSON-able value that does not depend on key order or the Python process."""
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


# Pod template ---------------------------------------------------------------------------------------------
def _fail(path: str, problem: str) -> InvalidTemplate:
    return InvalidTemplate(f"spec.template{path}: {problem}")


def _checked_containers(template: dict[str, Any]) -> list[dict[str, Any]]:
    """Validates the parts of the template the operator relies on; errors name the field path."""
    if not isinstance(template, dict):
        raise InvalidTemplate("spec.template: must be an object (a PodTemplateSpec)")
    metadata = template.get("metadata", {})
    if not isinstance(metadata, dict):
        raise _fail(".metadata", "must be an object")
    for key in ("labels", "annotations"):
        values = metadata.get(key, {})
        if not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values()):
            raise _fail(f".metadata.{key}", "must map names to strings")
    pod = template.get("spec")
    if not isinstance(pod, dict):
        raise _fail(".spec", "required")
    containers = pod.get("containers")
    if not isinstance(containers, list) or not containers:
        raise _fail(".spec.containers", "required: at least one container")
    for index, container in enumerate(containers):
        where = f".spec.containers[{index}]"
        if not isinstance(container, dict):
            raise _fail(where, "must be an object")
        for field in ("name", "image"):
            value = container.get(field)
            if not isinstance(value, str) or not value.strip():
                raise _fail(f"{where}.{field}", "required")
        for field in ("env", "ports"):
            if not isinstance(container.get(field, []), list):
                raise _fail(f"{where}.{field}", "must be a list")
    return containers


def serving_container_index(containers: list[dict[str, Any]], port: int) -> int:
    """The container that serves the model: the one exposing the readiness port, else the first."""
    for index, container in enumerate(containers):
        for declared in container.get("ports") or []:
            if isinstance(declared, dict) and declared.get("containerPort") == port:
                return index
    return 0


def slices_env(spec: ModelRolloutSpec) -> str:
    """MODELROLLOUT_SLICES: the declared slices in route order, in their spec (wire) form.

    `modelrollout.serving` parses each entry as an `api.spec.Slice`, so metrics carry the same slice names as
    the routes; unmatched requests are the slice "default".
    """
    return json.dumps([s.wire() for s in spec.slices], sort_keys=True, separators=(",", ":"))


def _probe_timing(spec: ModelRolloutSpec) -> tuple[int, int]:
    """(periodSeconds, startup failureThreshold) with failureThreshold x periodSeconds == loadTimeout.

    periodSeconds must be a whole number, so sub-second or fractional periods round up first and the
    threshold is computed from the rounded period; otherwise the budget would overshoot loadTimeout.
    """
    period = max(1, math.ceil(seconds(spec.readiness.probe_period)))
    threshold = max(1, math.ceil(seconds(spec.readiness.load_timeout) / period))
    return period, threshold


def _model_probes(spec: ModelRolloutSpec) -> tuple[dict[str, Any], dict[str, Any]]:
    period, threshold = _probe_timing(spec)
    http_get = {"path": spec.readiness.model_ready_path, "port": spec.readiness.port}
    startup = {"httpGet": dict(http_get), "periodSeconds": period, "failureThreshold": threshold}
    readiness = {"httpGet": dict(http_get), "periodSeconds": period}
    return startup, readiness


def _with_model_env(env: list[Any], ours: list[dict[str, str]]) -> list[Any]:
    # Ours go first so the user's entries can use them as $(MODEL_URI); same-named entries are replaced.
    names = {entry["name"] for entry in ours}
    kept = [e for e in env if not (isinstance(e, dict) and e.get("name") in names)]
    return [dict(entry) for entry in ours] + kept


def _render_pod_template(
    spec: ModelRolloutSpec, version: str, uri: str, rollout_name: str | None
) -> tuple[dict[str, Any], str]:
    """The pod template of one version and its hash.

    The hash is taken before the rollout-name label is added: it identifies the version's environment (what
    `fingerprint` records), not which ModelRollout runs it, so it can be computed from the spec alone.
    """
    source_containers = _checked_containers(spec.template)
    template = copy.deepcopy(spec.template)
    metadata = template.setdefault("metadata", {})
    labels = dict(metadata.get("labels") or {})
    labels.update(version_labels(rollout_name or "", spec, version))
    del labels[ROLLOUT_LABEL]  # added back after hashing
    metadata["labels"] = labels

    containers: list[dict[str, Any]] = template["spec"]["containers"]
    serving = containers[serving_container_index(source_containers, spec.readiness.port)]
    serving["env"] = _with_model_env(
        serving.get("env") or [],
        [
            {"name": ENV_MODEL_NAME, "value": spec.model.name},
            {"name": ENV_MODEL_VERSION, "value": version},
            {"name": ENV_MODEL_URI, "value": uri},
            {"name": ENV_SLICES, "value": slices_env(spec)},
            # modelrollout.serving listens and reports readiness where the probes look.
            {"name": ENV_PORT, "value": str(spec.readiness.port)},
            {"name": ENV_READY_PATH, "value": spec.readiness.model_ready_path},
        ],
    )
    startup, readiness = _model_probes(spec)
    serving["startupProbe"] = startup
    serving["readinessProbe"] = readiness  # on the model's ready path; a livenessProbe is left as written

    template_hash = stable_hash(template)
    if rollout_name is not None:
        labels[ROLLOUT_LABEL] = rollout_name
    return template, template_hash


def render_pod_template(spec: ModelRolloutSpec, rollout_name: str, version: str, uri: str) -> dict[str, Any]:
    """The pod template a version's Deployment runs (validated; the input is not modified)."""
    return _render_pod_template(spec, version, uri, rollout_name)[0]


def template_hash(spec: ModelRolloutSpec, version: str, uri: str) -> str:
    """The hash recorded in the Deployment's modelrollout.io/template-hash annotation and the fingerprint."""
    return _render_pod_template(spec, version, uri, None)[1]


# Objects ----------------------------------------------------------------------------------------------------
def _metadata(name: str, namespace: str, uid: str, spec: ModelRolloutSpec, version: str) -> dict[str, Any]:
    return {
        "name": workload_name(name, version),
        "namespace": namespace,
        "labels": version_labels(name, spec, version),
        "ownerReferences": [owner_reference(name, uid)],
    }


def render_deployment(
    name: str, namespace: str, uid: str, spec: ModelRolloutSpec, version: str, uri: str, replicas: int
) -> dict[str, Any]:
    """The Deployment of one model version of the ModelRollout `name` (uid: the ModelRollout's uid).

    Raises ValueError naming the field path when the template lacks what a pod needs.
    """
    if replicas < 0:
        raise InvalidTemplate(f"replicas: must not be negative, got {replicas}")
    pod_template, digest = _render_pod_template(spec, version, uri, name)
    metadata = _metadata(name, namespace, uid, spec, version)
    metadata["annotations"] = {TEMPLATE_HASH_ANNOTATION: digest}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata,
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": selector_labels(name, version)},
            "template": pod_template,
        },
    }


def render_service(
    name: str, namespace: str, uid: str, spec: ModelRolloutSpec, version: str
) -> dict[str, Any]:
    """The ClusterIP Service in front of one version's pods; its FQDN is that version's Istio destination."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(name, namespace, uid, spec, version),
        "spec": {
            "type": "ClusterIP",
            "selector": selector_labels(name, version),
            "ports": [
                {
                    # The name and appProtocol tell Istio this is HTTP, without protocol sniffing.
                    "name": SERVICE_PORT_NAME,
                    "appProtocol": "http",
                    "protocol": "TCP",
                    "port": spec.service_port(),
                    "targetPort": spec.readiness.port,
                }
            ],
        },
    }


def fingerprint(spec: ModelRolloutSpec, version: str, uri: str) -> Fingerprint:
    """What makes a version reproducible: images as written, model URI, environment, template hash."""
    containers = _checked_containers(spec.template)
    pod = spec.template["spec"]
    init_containers = pod.get("initContainers") or []
    images = [c["image"] for c in containers]
    images += [c["image"] for c in init_containers if isinstance(c, dict) and isinstance(c.get("image"), str)]
    annotations = (spec.template.get("metadata") or {}).get("annotations") or {}
    environment = annotations.get(ENVIRONMENT_ANNOTATION)
    return Fingerprint(
        images=images,
        model_uri=uri,
        environment=environment if isinstance(environment, str) else None,
        template_hash=template_hash(spec, version, uri),
    )
