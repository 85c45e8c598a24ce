"""Identity and vocabulary: every name the operator puts on the cluster, defined once.

The API group, version and kind, the Istio and Gateway API kinds it writes, every label and annotation, the finalizer, the
field manager and the names derived from a rollout (Deployments, Services, route names). Everything else
imports these; nothing else spells them. Pure: no I/O, no imports beyond the standard library.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

# The ModelRollout API ----------------------------------------------------------------------------------------
GROUP = "modelrollout.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "ModelRollout"
PLURAL = "modelrollouts"
SINGULAR = "modelrollout"
SHORT_NAMES = ("mro",)
CRD_NAME = f"{PLURAL}.{GROUP}"

# What the operator writes into ------------------------------------------------------------------------------
ISTIO_GROUP = "networking.istio.io"
ISTIO_VERSION = "v1"
ISTIO_API_VERSION = f"{ISTIO_GROUP}/{ISTIO_VERSION}"
VIRTUAL_SERVICE_KIND = "VirtualService"
VIRTUAL_SERVICES = "virtualservices"
GATEWAY_GROUP = "gateway.networking.k8s.io"
GATEWAY_VERSION = "v1"
GATEWAY_API_VERSION = f"{GATEWAY_GROUP}/{GATEWAY_VERSION}"
HTTP_ROUTE_KIND = "HTTPRoute"
HTTP_ROUTES = "httproutes"

# Labels on everything the operator creates ----------------------------------------------------------------
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "modelrollout"
ROLLOUT_LABEL = f"{GROUP}/rollout"
VERSION_LABEL = f"{GROUP}/version"
APP_NAME_LABEL = "app.kubernetes.io/name"
APP_VERSION_LABEL = "app.kubernetes.io/version"

# Annotations ----------------------------------------------------------------------------------------------
TEMPLATE_HASH_ANNOTATION = f"{GROUP}/template-hash"
"""On a version's Deployment: the hash of the pod template it was rendered from."""
ENVIRONMENT_ANNOTATION = f"{GROUP}/environment-fingerprint"
"""On the user's pod template: a declared environment fingerprint, recorded in status."""
CLAIM_ANNOTATION = f"{GROUP}/rollout"
"""On a VirtualService or HTTPRoute: the ModelRollout whose `modelrollout-*` routes it carries (one rollout each)."""
PAUSED_ANNOTATION = f"{GROUP}/paused"
PROMOTE_ANNOTATION = f"{GROUP}/promote"
ABORT_ANNOTATION = f"{GROUP}/abort"
RETRY_ANNOTATION = f"{GROUP}/retry"
LOAD_DELAY_ANNOTATION = f"sandbox.{GROUP}/load-delay"
"""Sandbox only: how long kwok keeps a pod unready, standing in for model load time."""

# The operator's own identity on the API server -------------------------------------------------------------
FINALIZER = f"{GROUP}/operator"
FIELD_MANAGER = "modelrollout"
EVENT_COMPONENT = f"{GROUP}/operator"
EVENT_SOURCE = "modelrollout"

# Routes ---------------------------------------------------------------------------------------------------
ROUTE_PREFIX = "modelrollout-"
DEFAULT_SLICE = "default"
SLICE_HEADER = "x-modelrollout-slice"
"""Set on every routed request: the slice its route decided, for the model server's and Istio's `slice` label."""
QA_SLICE = "_qa"
"""The `slice` label of requests the QA override route sent to the candidate: no declared slice (a DNS label)
can be named so, so no analysis counts them."""
PREVIEW_SLICE = "_preview"
"""The `slice` label of requests the blue-green preview route sent to the candidate (left out of analysis)."""
EXCLUDED_SLICES = (QA_SLICE, PREVIEW_SLICE)
"""Slice labels of requests that reach a version but are never analysed."""
OVERRIDE_SUFFIX = ".override"
"""Owned routes that are not a slice's end in this (a slice name, a DNS label, has no dot)."""
ARM_SUFFIX = ".candidate-arm"
"""A/B: the owned route sending a slice's users in the candidate's buckets to it, before the slice's route."""

# Derived names --------------------------------------------------------------------------------------------
MAX_NAME = 63
"""A ModelRollout's name is a label value on everything it creates: at most 63 characters (admission says so)."""
NAME_TOO_LONG = (
    f"metadata.name must be at most {MAX_NAME} characters: it is the value of the {GROUP}/rollout label "
    "on every object the operator creates"
)
_HASH_LEN = 8
_NOT_LABEL_CHAR = re.compile(r"[^a-z0-9-]")


def workload_name(rollout_name: str, version: str) -> str:
    """The name of a version's Deployment and Service: a DNS-1035 label of at most 63 characters.

    `<rollout>-<version>-<hash>`, the hash taken over the exact rollout name and version: without it rollout
    `a-b` with version `c` and rollout `a` with version `b-c` would share names, and so would versions that
    map to the same characters (`1.2`, `1-2`). The readable part is mapped to label characters and cut to fit.
    """
    digest = hashlib.sha256(f"{rollout_name}\x00{version}".encode()).hexdigest()[:_HASH_LEN]
    mapped = _NOT_LABEL_CHAR.sub("-", f"{rollout_name}-{version}".lower())
    if not mapped[:1].isalpha():
        mapped = "m-" + mapped
    head = mapped[: MAX_NAME - _HASH_LEN - 1].rstrip("-")
    return f"{head}-{digest}"


def service_host(rollout_name: str, version: str, namespace: str) -> str:
    """The cluster-local FQDN of a version's Service, as Istio destinations name it."""
    return f"{workload_name(rollout_name, version)}.{namespace}.svc.cluster.local"


def route_name(slice_name: str) -> str:
    """The name of the owned route of a slice ('default' for unmatched traffic)."""
    return f"{ROUTE_PREFIX}{slice_name}"


def arm_route_name(slice_name: str) -> str:
    """The name of a slice's A/B route to the candidate arm."""
    return f"{ROUTE_PREFIX}{slice_name}{ARM_SUFFIX}"


def override_route_name(kind: str) -> str:
    """The name of an owned route that sends requests with a header to the candidate ('qa' or 'preview')."""
    return f"{ROUTE_PREFIX}{kind}{OVERRIDE_SUFFIX}"


def owner_reference(rollout_name: str, uid: str) -> dict[str, Any]:
    """The controller ownerReference that ties a generated object to its ModelRollout (garbage collection)."""
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": rollout_name,
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }
