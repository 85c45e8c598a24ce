"""The one ModelRollout spec builder every test starts from, and its parts.

A test names what it cares about (slices, steps, guards, readiness) and takes the rest from here, so the
shape of a spec is written once. Values are the wire form (camelCase), as a person writes a manifest.
"""

from __future__ import annotations

import copy
from typing import Any

from modelrollout.api.spec import ModelRolloutSpec
from modelrollout.identity import API_VERSION, KIND

MODEL = "recommender"
IMAGE = "ghcr.io/example/model-server:1.0"
PROMETHEUS = "http://127.0.0.1:9090"


def merged(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """`base` with `overrides` merged in depth (dicts merge, anything else replaces)."""
    out = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def manifest(spec: dict[str, Any], name: str = MODEL) -> dict[str, Any]:
    """A ModelRollout object around a spec, as `kubectl apply` would send it."""
    return {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": name}, "spec": spec}


def model(version: str, **extra: Any) -> dict[str, Any]:
    return {"name": MODEL, "version": version, "uri": f"s3://models/{MODEL}/{version}", **extra}


def container(image: str = IMAGE, *, port: int | None = 8080, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"name": "server", "image": image}
    if port is not None:
        out["ports"] = [{"containerPort": port, "name": "http"}]
    return {**out, **extra}


def template(*containers: dict[str, Any], annotations: dict[str, str] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"spec": {"containers": list(containers) or [container()]}}
    if annotations is not None:
        out = {"metadata": {"annotations": dict(annotations)}, **out}
    return out


def istio(
    host: str = f"{MODEL}.ml.svc.cluster.local", virtual_service: str = MODEL, **extra: Any
) -> dict[str, Any]:
    return {"istio": {"host": host, "virtualService": virtual_service, **extra}}


def gateway_api(http_route: str = MODEL, service: str = MODEL, **extra: Any) -> dict[str, Any]:
    """Gateway API traffic through an HTTPRoute attached, as in Gateway API's mesh mode, to the Service
    clients call."""
    parents = [{"group": "", "kind": "Service", "name": service}]
    return {"gatewayAPI": {"httpRoute": http_route, "parentRefs": parents, **extra}}


def by_header(name: str, header: str, value: str) -> dict[str, Any]:
    """A slice of the requests whose `header` is exactly `value`."""
    return {"name": name, "match": {"headers": {header: {"exact": value}}}}


PLATFORMS = [by_header("ios", "x-platform", "ios"), by_header("android", "x-platform", "android")]


def error_guard(name: str = "errors", **bounds: Any) -> dict[str, Any]:
    return {"name": name, "metric": "errorRate", **(bounds or {"max": 0.05})}


def analysis_with(*guards: dict[str, Any], url: str = PROMETHEUS, **fields: Any) -> dict[str, Any]:
    return {"prometheus": {"url": url}, **fields, "guards": list(guards) or [error_guard()]}


def rollout_spec(
    version: str = "v2",
    *,
    template: dict[str, Any] | None = None,
    replicas: int = 2,
    readiness: dict[str, Any] | None = None,
    traffic: dict[str, Any] | None = None,
    slices: list[dict[str, Any]] | None = None,
    strategy: dict[str, Any] | None = None,
    analysis: dict[str, Any] | None = None,
    **more: Any,
) -> dict[str, Any]:
    """A complete, valid spec; every part can be replaced (`more` adds top-level fields such as gates)."""
    spec: dict[str, Any] = {
        "model": model(version),
        "template": template if template is not None else _default_template(),
        "replicas": replicas,
    }
    if readiness is not None:
        spec["readiness"] = readiness
    spec["traffic"] = traffic if traffic is not None else istio()
    spec["slices"] = PLATFORMS if slices is None else slices
    spec["strategy"] = (
        strategy if strategy is not None else {"canary": {"steps": [{"weight": 10}, {"weight": 50}]}}
    )
    spec["analysis"] = analysis if analysis is not None else analysis_with()
    return {**copy.deepcopy(spec), **copy.deepcopy(more)}


def parsed(spec: dict[str, Any]) -> ModelRolloutSpec:
    return ModelRolloutSpec.model_validate(spec)


def _default_template() -> dict[str, Any]:
    return template(container(port=None))
