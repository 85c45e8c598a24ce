"""Generates the ModelRollout CustomResourceDefinition from the pydantic models.

Pydantic's JSON schema is turned into a Kubernetes structural schema: references are inlined, optional
values lose their `null` branch, defaults move into descriptions (the models apply them), and the CEL rules
declared on the models stay as `x-kubernetes-validations`.
"""

from __future__ import annotations

from typing import Any

import yaml

from modelrollout.api.spec import ModelRolloutSpec
from modelrollout.api.status import ModelRolloutStatus
from modelrollout.identity import (
    CRD_NAME,
    GROUP,
    KIND,
    MAX_NAME,
    NAME_TOO_LONG,
    PLURAL,
    SHORT_NAMES,
    SINGULAR,
    VERSION,
)

_DROP = {"title", "default", "examples", "example"}


def _resolve(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_resolve(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = defs[node["$ref"].rsplit("/", 1)[-1]]
        merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        return _resolve(merged, defs)
    return {key: _resolve(value, defs) for key, value in node.items()}


def _structural(node: dict[str, Any]) -> dict[str, Any]:
    """Rewrites one resolved JSON-schema node into the OpenAPI v3 subset Kubernetes accepts."""
    node = dict(node)
    description = node.get("description", "")
    default = node.get("default")
    if "anyOf" in node:  # Optional[X] -> X
        branches = [b for b in node.pop("anyOf") if b.get("type") != "null"]
        if len(branches) != 1:
            raise ValueError(f"cannot express a union in a structural schema: {branches}")
        node = {**branches[0], **{k: v for k, v in node.items() if k not in ("anyOf",)}}
    if "const" in node:
        node["enum"] = [node.pop("const")]
    if "exclusiveMinimum" in node:
        node["minimum"], node["exclusiveMinimum"] = node["exclusiveMinimum"], True
    if "exclusiveMaximum" in node:
        node["maximum"], node["exclusiveMaximum"] = node["exclusiveMaximum"], True
    if default is not None and not isinstance(default, dict | list):
        shown = str(default).lower() if isinstance(default, bool) else default
        if f"(default {shown})" not in description:
            description = f"{description} (default {shown})".strip()
    out: dict[str, Any] = {k: v for k, v in node.items() if k not in _DROP}
    if description:
        out["description"] = description.strip()
    if out.get("x-kubernetes-preserve-unknown-fields"):
        out.pop("additionalProperties", None)
        out["type"] = "object"
        return out
    kind = out.get("type")
    if kind == "object":
        if "properties" in out:
            out["properties"] = {name: _structural(sub) for name, sub in out["properties"].items()}
            out.pop("additionalProperties", None)
        elif isinstance(out.get("additionalProperties"), dict):
            out["additionalProperties"] = _structural(out["additionalProperties"])
        elif out.get("additionalProperties") is True:
            out.pop("additionalProperties")
            out["x-kubernetes-preserve-unknown-fields"] = True
    elif kind == "array":
        out["items"] = _structural(out["items"])
    elif kind == "number" and "format" not in out:
        out["format"] = "double"
    elif kind == "integer" and "format" not in out:
        out["format"] = "int64"
    if out.get("format") == "date-time":
        out.pop("minLength", None)
    return out


def schema_of(model: type[ModelRolloutSpec] | type[ModelRolloutStatus]) -> dict[str, Any]:
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs = raw.pop("$defs", {})
    return _structural(_resolve(raw, defs))


NEW_STATUS = {"observedGeneration": 0}
"""The status the API server shows before the operator first writes one (a default applied when the object
is read): generation 1 not yet observed, so kstatus (Flux, kpt), `kubectl wait` and Argo CD wait for the
operator instead of reading a status-less object as done."""


def crd() -> dict[str, Any]:
    spec_schema = schema_of(ModelRolloutSpec)
    status_schema = {**schema_of(ModelRolloutStatus), "default": NEW_STATUS}
    root = {
        "type": "object",
        "description": "Progressive, per-slice judged delivery of an ML model version.",
        "required": ["spec"],
        "x-kubernetes-validations": [
            {
                "rule": f"self.metadata.name.size() <= {MAX_NAME}",
                "message": NAME_TOO_LONG,
            }
        ],
        "properties": {
            "apiVersion": {"type": "string", "description": "API version of this object."},
            "kind": {"type": "string", "description": "Kind of this object."},
            "metadata": {"type": "object"},
            "spec": spec_schema,
            "status": status_schema,
        },
    }
    columns = [
        ("Phase", "string", ".status.phase", "Lifecycle phase"),
        (
            "Ready",
            "string",
            '.status.conditions[?(@.type=="Ready")].status',
            "The spec's version serves all traffic",
        ),
        ("Stable", "string", ".status.stableVersion", "Version serving users"),
        ("Candidate", "string", ".status.candidateVersion", "Version being rolled out"),
        ("Weight", "integer", ".status.canaryWeight", "Candidate share of every slice (percent)"),
        ("Failing", "integer", ".status.failingSlices", "Slices whose latest verdict is Fail"),
        ("Age", "date", ".metadata.creationTimestamp", "Age"),
    ]
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": CRD_NAME, "labels": {"app.kubernetes.io/name": "modelrollout"}},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": SINGULAR,
                "shortNames": list(SHORT_NAMES),
                "categories": ["all", "modelrollout"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [
                        {"name": n, "type": t, "jsonPath": p, "description": d} for n, t, p, d in columns
                    ],
                    "schema": {"openAPIV3Schema": root},
                }
            ],
        },
    }


def render() -> str:
    header = (
        "# Generated from the pydantic models in operator/modelrollout/api by `make crds`. Do not edit.\n"
    )
    return header + yaml.safe_dump(crd(), sort_keys=False, width=120)
