"""A catalogue of ModelRollout specs the API must refuse, each with the field it must name.

Every case is one small edit of `VALID`, so a case fails for exactly one reason. The same catalogue is sent to
the real API server (tests/integration/api) and to `lint_spec` (tests/unit/api): both must refuse every case
and name the same field, so `kubectl modelrollout lint` and `kubectl apply` never disagree.

`path` is written exactly as the API server reports it. List items are `[0]`; map keys depend on which check
fired: schema errors write `.key` (`spec.slices[1].match.headers.x-user.regex`), CEL rules on a map value write
`[key]` (`spec.slices[0].match.headers[x-platform]`). `lint_spec` always writes `.key`; `lint_path` converts.

Unknown fields are special. The API server prunes them unless the request asks `fieldValidation=Strict`
(kubectl sends Strict by default; the Python client sends nothing, which the server treats as Warn: the field
is dropped with a warning and the object is accepted). Under Strict the server answers 400 BadRequest
("strict decoding error: unknown field ...") before schema validation, not 422 Invalid.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Any, Final

from modelrollout.api.spec import FULL_STEP_WITH_RELATIVE_GUARD

DELETE: Final = object()  # a change that removes the field instead of setting it

VALID: Final[dict[str, Any]] = {
    "model": {
        "name": "recommender",
        "version": "v42",
        "uri": "s3://models/recommender/v42",
        "schema": {
            "version": 4,
            "features": [{"name": "user_id", "type": "string"}, {"name": "embedding", "type": "float[]"}],
        },
    },
    "template": {"spec": {"containers": [{"name": "server", "image": "ghcr.io/example/recommender:2.3.1"}]}},
    "replicas": 4,
    "readiness": {"modelReadyPath": "/v2/models/recommender/ready", "port": 8080, "minReadyReplicas": 2},
    "traffic": {"istio": {"host": "recommender.ml.svc.cluster.local", "virtualService": "recommender"}},
    "slices": [
        {"name": "android", "match": {"headers": {"x-platform": {"exact": "android"}}}},
        {"name": "beta", "match": {"headers": {"x-user": {"prefix": "beta-"}}}},
    ],
    "strategy": {
        "shadow": {"mirrorPercent": 50, "duration": "5m"},
        "canary": {"steps": [{"weight": 5, "pause": "2m"}, {"weight": 50, "pause": "5m"}]},
    },
    "analysis": {
        "prometheus": {"url": "http://prometheus.monitoring:9090"},
        "guards": [
            {"name": "errors", "metric": "errorRate", "max": 0.05, "slices": {"android": {"max": 0.08}}},
            {"name": "p99", "metric": "latencyP99", "maxRatioToStable": 1.2},
        ],
    },
    "rollback": {"notify": [{"webhook": {"url": "https://hooks.example.com/mlops"}}]},
    "gates": [{"name": "leakage-report", "webhook": {"url": "https://gates.example.com/leakage"}}],
}

_STEP = re.compile(r"\.?([^.\[\]]+)|\[(\d+)\]")


def _assign(spec: dict[str, Any], where: str, value: Any) -> None:
    """Sets (or, with DELETE, removes) the field at a dotted path such as `strategy.canary.steps[0].weight`."""
    keys: list[str | int] = [
        int(index) if index else name for name, index in _STEP.findall(where) if name or index
    ]
    parent: Any = spec
    for key in keys[:-1]:
        parent = parent[key]
    if value is DELETE:
        del parent[keys[-1]]
    else:
        parent[keys[-1]] = copy.deepcopy(value)


def edited(*changes: tuple[str, Any]) -> dict[str, Any]:
    spec = copy.deepcopy(VALID)
    for where, value in changes:
        _assign(spec, where, value)
    return spec


def lint_path(path: str) -> str:
    """The admission path as `lint_spec` writes it: map keys `[key]` become `.key`, list indexes stay."""
    return re.sub(r"\[(?!\d+\])([^\]]+)\]", r".\1", path)


@dataclass(frozen=True)
class Invalid:
    """One spec both admission and the models must refuse."""

    id: str
    spec: dict[str, Any]
    path: str
    """Field the error must name, as the API server writes it."""
    rule: str | None = None
    """For cross-field rules: the message admission (CEL) and the model (Python check) both give."""
    status: int = 422
    """HTTP status of the API server's refusal: 422 Invalid, or 400 for unknown fields under Strict."""


def _slices(count: int) -> list[dict[str, Any]]:
    return [{"name": f"s{i}", "match": {"headers": {"x-shard": {"exact": str(i)}}}} for i in range(count)]


GATEWAY_API: Final[dict[str, Any]] = {
    "httpRoute": "recommender",
    "parentRefs": [{"group": "", "kind": "Service", "name": "recommender"}],
}
ONE_PROVIDER = "set exactly one traffic provider: istio or gatewayAPI"
ASCEND = "step weights must strictly ascend"
ONE_MATCH = "exactly one of exact, prefix or regex must be set"
DELIVERY = "set exactly one delivery strategy: canary, blueGreen or experiment"
AB: Final[dict[str, Any]] = {
    "assignment": {"header": "x-user-id"},
    "metric": {"successes": "model_conversions_total"},
    "minimumDetectableEffect": 0.1,
}
GUARD = "analysis.guards"
MIN_MAX = "min cannot exceed max: no value could pass"

CASES: Final[list[Invalid]] = [
    # Canary steps
    Invalid(
        "steps-descending",
        edited(("strategy.canary.steps", [{"weight": 50}, {"weight": 5}])),
        "spec.strategy.canary.steps",
        ASCEND,
    ),
    Invalid(
        "steps-repeated-weight",
        edited(("strategy.canary.steps", [{"weight": 5}, {"weight": 5}, {"weight": 50}])),
        "spec.strategy.canary.steps",
        ASCEND,
    ),
    Invalid(
        "step-weight-over-100",
        edited(("strategy.canary.steps[1].weight", 101)),
        "spec.strategy.canary.steps[1].weight",
    ),
    Invalid(
        "step-weight-zero",
        edited(("strategy.canary.steps[0].weight", 0)),
        "spec.strategy.canary.steps[0].weight",
    ),
    Invalid(
        "step-weight-quoted",
        edited(("strategy.canary.steps[0].weight", "5")),
        "spec.strategy.canary.steps[0].weight",
    ),
    Invalid("steps-empty", edited(("strategy.canary.steps", [])), "spec.strategy.canary.steps"),
    Invalid(
        "steps-too-many",
        edited(("strategy.canary.steps", [{"weight": w} for w in range(1, 22)])),
        "spec.strategy.canary.steps",
    ),
    Invalid(
        "step-pause-in-words",
        edited(("strategy.canary.steps[0].pause", "5 minutes")),
        "spec.strategy.canary.steps[0].pause",
    ),
    Invalid("no-delivery-strategy", edited(("strategy.canary", DELETE)), "spec.strategy", DELIVERY),
    Invalid(
        "experiment-without-a-sticky-key",
        edited(("strategy.canary", DELETE), ("strategy.experiment", {**AB, "assignment": {}})),
        "spec.strategy.experiment.assignment",
        "set exactly one sticky key: header or cookie",
    ),
    Invalid(
        "experiment-with-two-sticky-keys",
        edited(
            ("strategy.canary", DELETE),
            ("strategy.experiment", {**AB, "assignment": {"header": "x-user-id", "cookie": "uid"}}),
        ),
        "spec.strategy.experiment.assignment",
        "set exactly one sticky key: header or cookie",
    ),
    Invalid(
        "canary-and-experiment",
        edited(("strategy.experiment", AB)),
        "spec.strategy",
        DELIVERY,
    ),
    Invalid(
        "qa-override-with-gateway-api",
        edited(("traffic", {"gatewayAPI": GATEWAY_API}), ("strategy.qaOverride", {"header": "x-qa"})),
        "spec.strategy",
        "strategy.qaOverride, strategy.experiment and strategy.blueGreen.preview need traffic.istio (the "
        "gatewayAPI provider renders no header routes to the candidate yet)",
    ),
    Invalid(
        "canary-and-blue-green",
        edited(("strategy.blueGreen", {"bake": "5m"})),
        "spec.strategy",
        DELIVERY,
    ),
    Invalid(
        "bake-not-a-duration",
        edited(("strategy.canary", DELETE), ("strategy.blueGreen", {"bake": "five minutes"})),
        "spec.strategy.blueGreen.bake",
    ),
    Invalid(
        "preview-header-uppercase",
        edited(("strategy.canary", DELETE), ("strategy.blueGreen", {"preview": {"header": "X-Preview"}})),
        "spec.strategy.blueGreen.preview.header",
    ),
    Invalid(
        "preview-value-two-matches",
        edited(
            ("strategy.canary", DELETE),
            (
                "strategy.blueGreen",
                {"preview": {"header": "x-preview", "value": {"exact": "1", "prefix": "1"}}},
            ),
        ),
        "spec.strategy.blueGreen.preview.value",
        ONE_MATCH,
    ),
    Invalid(
        "qa-override-header-missing", edited(("strategy.qaOverride", {})), "spec.strategy.qaOverride.header"
    ),
    Invalid(
        "promotion-mode-unknown",
        edited(("strategy.promotion", {"mode": "automatic"})),
        "spec.strategy.promotion.mode",
    ),
    # Shadow
    Invalid(
        "mirror-percent-over-100",
        edited(("strategy.shadow.mirrorPercent", 150)),
        "spec.strategy.shadow.mirrorPercent",
    ),
    Invalid(
        "mirror-percent-zero",
        edited(("strategy.shadow.mirrorPercent", 0)),
        "spec.strategy.shadow.mirrorPercent",
    ),
    Invalid(
        "shadow-duration-unitless",
        edited(("strategy.shadow.duration", "10")),
        "spec.strategy.shadow.duration",
    ),
    Invalid(
        "shadow-duration-missing",
        edited(("strategy.shadow.duration", DELETE)),
        "spec.strategy.shadow.duration",
    ),
    # Durations elsewhere
    Invalid("interval-in-days", edited(("analysis.interval", "1d")), "spec.analysis.interval"),
    Invalid("window-trailing-number", edited(("analysis.window", "1m30")), "spec.analysis.window"),
    Invalid("load-timeout-negative", edited(("readiness.loadTimeout", "-5m")), "spec.readiness.loadTimeout"),
    Invalid(
        "scale-down-delay-empty", edited(("rollback.scaleDownDelay", "")), "spec.rollback.scaleDownDelay"
    ),
    # Slices
    Invalid(
        "slice-names-duplicate",
        edited(("slices[1].name", "android")),
        "spec.slices",
        "slice names must be unique",
    ),
    Invalid("slice-name-not-dns", edited(("slices[0].name", "Android_EU")), "spec.slices[0].name"),
    Invalid("slice-name-too-long", edited(("slices[0].name", "a" * 64)), "spec.slices[0].name"),
    Invalid(
        "slice-named-default",
        edited(("slices[0].name", "default"), ("analysis.guards[0].slices", DELETE)),
        "spec.slices[0].name",
        "'default' is the implicit slice of unmatched traffic and cannot be declared",
    ),
    Invalid(
        "slices-too-many",
        edited(("slices", _slices(33)), ("analysis.guards[0].slices", DELETE)),
        "spec.slices",
    ),
    Invalid("slice-without-match", edited(("slices[0].match", DELETE)), "spec.slices[0].match"),
    Invalid(
        "header-name-uppercase",
        edited(("slices[0].match.headers", {"X-Platform": {"exact": "android"}})),
        "spec.slices[0].match.headers",
        "header names must be lowercase (letters, digits, '-' and '_'), as Istio compares them",
    ),
    Invalid(
        "header-exact-and-regex",
        edited(("slices[0].match.headers.x-platform", {"exact": "android", "regex": "android.*"})),
        "spec.slices[0].match.headers[x-platform]",
        ONE_MATCH,
    ),
    Invalid(
        "header-no-operator",
        edited(("slices[0].match.headers.x-platform", {})),
        "spec.slices[0].match.headers[x-platform]",
        ONE_MATCH,
    ),
    Invalid("headers-empty", edited(("slices[0].match.headers", {})), "spec.slices[0].match.headers"),
    Invalid(
        "headers-too-many",
        edited(("slices[0].match.headers", {f"x-h{i}": {"exact": "1"} for i in range(9)})),
        "spec.slices[0].match.headers",
    ),
    Invalid(
        "header-regex-empty",
        edited(("slices[1].match.headers.x-user", {"regex": ""})),
        "spec.slices[1].match.headers.x-user.regex",
    ),
    # Guards
    Invalid(
        "metric-unknown-without-query",
        edited(("analysis.guards[1].metric", "latencyP999")),
        "spec.analysis.guards[1].metric",
        "metric must be one of errorRate, latencyP50, latencyP90, latencyP95, latencyP99, latencyMean, "
        "predictionPSI, predictionKS, nullPredictionRate, accuracy, or the guard must give a custom query",
    ),
    Invalid(
        "guard-without-threshold",
        edited(("analysis.guards[1].maxRatioToStable", DELETE)),
        "spec.analysis.guards[1]",
        "a guard needs at least one threshold: max, min, maxRatioToStable, maxDeltaToStable, "
        "minRatioToStable or minDeltaToStable",
    ),
    Invalid(
        "guard-names-duplicate",
        edited(("analysis.guards[1].name", "errors")),
        "spec.analysis.guards",
        "guard names must be unique",
    ),
    Invalid(
        "psi-bounded-by-ratio",
        edited(("analysis.guards[1].metric", "predictionPSI")),
        "spec.analysis.guards[1].metric",
        "predictionPSI and predictionKS already compare the candidate with stable: bound them with max or min",
    ),
    Invalid(
        "psi-bounded-by-lower-ratio",
        edited(
            ("analysis.guards[1].metric", "predictionKS"),
            ("analysis.guards[1].maxRatioToStable", DELETE),
            ("analysis.guards[1].minRatioToStable", 0.9),
        ),
        "spec.analysis.guards[1].metric",
        "predictionPSI and predictionKS already compare the candidate with stable: bound them with max or min",
    ),
    Invalid(
        "guard-immediate-with-for",
        edited(("analysis.guards[0].immediate", True), ("analysis.guards[0].for", "5m")),
        "spec.analysis.guards[0].for",
        "immediate acts on the first failing evaluation, for waits until a guard has failed that long: set one",
    ),
    Invalid(
        "guard-for-not-a-duration",
        edited(("analysis.guards[0].for", "5 minutes")),
        "spec.analysis.guards[0].for",
    ),
    Invalid(
        "guard-action-unknown",
        edited(("analysis.guards[0].action", "page")),
        "spec.analysis.guards[0].action",
    ),
    Invalid(
        "pause-traffic-on-rollback-guard",
        edited(("analysis.guards[0].pauseTraffic", "hold")),
        "spec.analysis.guards[0].pauseTraffic",
        "pauseTraffic applies only to guards with action: pause",
    ),
    Invalid(
        "pause-traffic-unknown",
        edited(("analysis.guards[0].action", "pause"), ("analysis.guards[0].pauseTraffic", "drain")),
        "spec.analysis.guards[0].pauseTraffic",
    ),
    Invalid(
        "guard-min-ratio-zero",
        edited(("analysis.guards[1].minRatioToStable", 0)),
        "spec.analysis.guards[1].minRatioToStable",
    ),
    Invalid(
        "override-negative-min-delta",
        edited(("analysis.guards[0].slices.android", {"minDeltaToStable": -0.05})),
        "spec.analysis.guards[0].slices.android.minDeltaToStable",
    ),
    Invalid(
        "sequential-on-latency",
        edited(("analysis.guards[1].test", "sequential")),
        "spec.analysis.guards[1].test",
        "test: sequential applies to the built-in errorRate metric (it needs request and error counts)",
    ),
    Invalid(
        "sequential-with-custom-query",
        edited(
            ("analysis.guards[0].test", "sequential"),
            (
                "analysis.guards[0].query",
                'sum by (slice, version) (rate(errors_total{model="{model}"}[{window}]))',
            ),
        ),
        "spec.analysis.guards[0].test",
        "test: sequential applies to the built-in errorRate metric (it needs request and error counts)",
    ),
    Invalid("guards-empty", edited(("analysis.guards", [])), "spec.analysis.guards"),
    Invalid(
        "guard-ratio-zero",
        edited(("analysis.guards[1].maxRatioToStable", 0)),
        "spec.analysis.guards[1].maxRatioToStable",
    ),
    Invalid(
        "guard-failure-limit-zero",
        edited(("analysis.guards[0].failureLimit", 0)),
        "spec.analysis.guards[0].failureLimit",
    ),
    Invalid(
        "guard-phases-empty", edited(("analysis.guards[0].phases", [])), "spec.analysis.guards[0].phases"
    ),
    Invalid(
        "guard-phase-unknown",
        edited(("analysis.guards[0].phases", ["promotion"])),
        "spec.analysis.guards[0].phases[0]",
    ),
    Invalid(
        "guard-immediate-as-word",
        edited(("analysis.guards[0].immediate", "yes")),
        "spec.analysis.guards[0].immediate",
    ),
    Invalid("guard-max-as-boolean", edited(("analysis.guards[0].max", True)), "spec.analysis.guards[0].max"),
    Invalid(
        "override-undeclared-slice",
        edited(("analysis.guards[0].slices", {"ios": {"max": 0.1}})),
        "spec.analysis.guards",
        "guard slice overrides must name a declared slice or 'default'",
    ),
    Invalid(
        "override-negative-delta",
        edited(("analysis.guards[0].slices.android", {"maxDeltaToStable": -0.01})),
        "spec.analysis.guards[0].slices.android.maxDeltaToStable",
    ),
    # Analysis settings
    Invalid(
        "prometheus-url-without-scheme",
        edited(("analysis.prometheus.url", "prometheus.monitoring:9090")),
        "spec.analysis.prometheus.url",
    ),
    Invalid(
        "prometheus-url-unicode-space",
        edited(("analysis.prometheus.url", "http://prometheus.monitoring:9090\u00a0")),
        "spec.analysis.prometheus.url",
    ),
    Invalid(
        "on-inconclusive-unknown",
        edited(("analysis.onInconclusive", "ignore")),
        "spec.analysis.onInconclusive",
    ),
    Invalid("alpha-too-large", edited(("analysis.alpha", 0.5)), "spec.analysis.alpha"),
    Invalid("alpha-zero", edited(("analysis.alpha", 0)), "spec.analysis.alpha"),
    Invalid("min-samples-zero", edited(("analysis.minSamples", 0)), "spec.analysis.minSamples"),
    Invalid(
        "metrics-profile-unknown",
        edited(("analysis.metrics", {"profile": "datadog"})),
        "spec.analysis.metrics.profile",
    ),
    # Replicas and readiness
    Invalid("replicas-negative", edited(("replicas", -1)), "spec.replicas"),
    Invalid("replicas-zero", edited(("replicas", 0)), "spec.replicas"),
    Invalid("replicas-quoted", edited(("replicas", "4")), "spec.replicas"),
    Invalid(
        "min-ready-above-replicas",
        edited(("readiness.minReadyReplicas", 5)),
        "spec.readiness.minReadyReplicas",
        "readiness.minReadyReplicas cannot exceed replicas",
    ),
    Invalid("min-ready-zero", edited(("readiness.minReadyReplicas", 0)), "spec.readiness.minReadyReplicas"),
    Invalid("readiness-port-out-of-range", edited(("readiness.port", 70000)), "spec.readiness.port"),
    Invalid(
        "ready-path-relative", edited(("readiness.modelReadyPath", "ready")), "spec.readiness.modelReadyPath"
    ),
    # Model and serving schema
    Invalid("version-missing", edited(("model.version", DELETE)), "spec.model.version"),
    Invalid("version-uppercase", edited(("model.version", "V42")), "spec.model.version"),
    Invalid("version-as-number", edited(("model.version", 42)), "spec.model.version"),
    Invalid("model-name-not-dns", edited(("model.name", "Recommender")), "spec.model.name"),
    Invalid(
        "features-duplicate",
        edited(("model.schema.features[1].name", "user_id")),
        "spec.model.schema.features[1]",
    ),
    Invalid(
        "extra-features-unknown",
        edited(("model.schema.extraFeatures", "drop")),
        "spec.model.schema.extraFeatures",
    ),
    Invalid(
        "feature-type-unknown",
        edited(("model.schema.features[1].type", "double")),
        "spec.model.schema.features[1].type",
    ),
    Invalid(
        "feature-name-leading-digit",
        edited(("model.schema.features[0].name", "1st_seen")),
        "spec.model.schema.features[0].name",
    ),
    Invalid("schema-version-negative", edited(("model.schema.version", -1)), "spec.model.schema.version"),
    # Template and traffic
    Invalid("template-missing", edited(("template", DELETE)), "spec.template"),
    Invalid(
        "template-not-an-object", edited(("template", "ghcr.io/example/recommender:2.3.1")), "spec.template"
    ),
    Invalid("traffic-missing", edited(("traffic", DELETE)), "spec.traffic"),
    Invalid(
        "virtual-service-not-dns",
        edited(("traffic.istio.virtualService", "Recommender_VS")),
        "spec.traffic.istio.virtualService",
    ),
    Invalid(
        "traffic-two-providers", edited(("traffic.gatewayAPI", GATEWAY_API)), "spec.traffic", ONE_PROVIDER
    ),
    Invalid("traffic-no-provider", edited(("traffic", {})), "spec.traffic", ONE_PROVIDER),
    Invalid(
        "gateway-api-without-parents",
        edited(("traffic", {"gatewayAPI": {**GATEWAY_API, "parentRefs": []}})),
        "spec.traffic.gatewayAPI.parentRefs",
    ),
    Invalid(
        "gateway-api-route-not-dns",
        edited(("traffic", {"gatewayAPI": {**GATEWAY_API, "httpRoute": "Recommender_Route"}})),
        "spec.traffic.gatewayAPI.httpRoute",
    ),
    Invalid(
        "gateway-api-parent-kind-invalid",
        edited(
            ("traffic", {"gatewayAPI": {**GATEWAY_API, "parentRefs": [{"kind": "1Gateway", "name": "g"}]}})
        ),
        "spec.traffic.gatewayAPI.parentRefs[0].kind",
    ),
    Invalid(
        "gateway-api-slices-too-many",
        edited(
            ("traffic", {"gatewayAPI": GATEWAY_API}),
            ("slices", _slices(16)),
            ("analysis.guards[0].slices", DELETE),
        ),
        "spec.slices",
        "with gatewayAPI at most 15 slices: an HTTPRoute holds 16 rules, one per slice and one for 'default'",
    ),
    Invalid(
        "gateway-api-fewer-headers-first",
        edited(
            ("traffic", {"gatewayAPI": GATEWAY_API}),
            ("slices[1].match.headers.x-platform", {"exact": "android"}),
        ),
        "spec.slices",
        "with gatewayAPI, list slices with more headers first: Gateway API gives a request to the matching rule "
        "with the most header matches, so only then does the first matching slice win, as with Istio",
    ),
    # Gates, notifications, rollback
    Invalid(
        "gate-names-duplicate",
        edited(("gates", [VALID["gates"][0], VALID["gates"][0]])),
        "spec.gates",
        "gate names must be unique",
    ),
    Invalid(
        "gate-url-ftp",
        edited(("gates[0].webhook.url", "ftp://gates.example.com/leakage")),
        "spec.gates[0].webhook.url",
    ),
    Invalid(
        "notify-url-missing",
        edited(("rollback.notify[0].webhook", {})),
        "spec.rollback.notify[0].webhook.url",
    ),
    Invalid(
        "rollback-safety-unknown",
        edited(("rollback.rollbackSafety", "ignore")),
        "spec.rollback.rollbackSafety",
    ),
    # Bounds: every duration between a floor and a ceiling (a 0s interval loops without sleeping; a
    # 99999h delay overflowed the planner's clock), numbers with a maximum, min never above max.
    *[
        Invalid(
            f"bound-{where.rsplit('.', 1)[-1].lower()}-{value}",
            edited((where, value)),
            f"spec.{where}",
            message,
        )
        for where, value, message in [
            ("analysis.interval", "0s", "must be between 1s and 1h"),
            ("analysis.interval", "1ms", "must be between 1s and 1h"),
            ("analysis.interval", "2h", "must be between 1s and 1h"),
            ("analysis.window", "0s", "must be between 1s and 24h"),
            ("analysis.window", "25h", "must be between 1s and 24h"),
            ("analysis.prometheus.timeout", "0s", "must be between 100ms and 60s"),
            ("analysis.prometheus.timeout", "5m", "must be between 100ms and 60s"),
            ("gates[0].webhook.timeout", "10m", "must be between 100ms and 60s"),
            ("rollback.notify[0].webhook.timeout", "0ms", "must be between 100ms and 60s"),
            ("readiness.loadTimeout", "48h", "must be between 1s and 24h"),
            ("readiness.probePeriod", "500ms", "must be between 1s and 5m"),
            ("readiness.probePeriod", "10m", "must be between 1s and 5m"),
            ("strategy.shadow.duration", "169h", "must be between 0s and 168h"),
            ("strategy.canary.steps[0].pause", "99999h", "must be between 0s and 168h"),
            ("rollback.scaleDownDelay", "99999h", "must be between 0s and 168h"),
            ("rollback.keepPreviousWarm", "10000h", "must be between 0s and 168h"),
        ]
    ],
    Invalid(
        "duration-overflowing-int64",
        edited(("rollback.scaleDownDelay", "99999999h")),
        "spec.rollback.scaleDownDelay",
    ),
    Invalid("duration-too-long", edited(("analysis.interval", "1m" * 13)), "spec.analysis.interval"),
    Invalid(
        "guard-min-above-max",
        edited(("analysis.guards[0].min", 0.1)),
        "spec.analysis.guards[0].min",
        MIN_MAX,
    ),
    Invalid(
        "override-min-above-max",
        edited(("analysis.guards[0].slices.android", {"min": 0.5, "max": 0.2})),
        "spec.analysis.guards[0].slices[android].min",
        MIN_MAX,
    ),
    Invalid("min-samples-huge", edited(("analysis.minSamples", 10**9)), "spec.analysis.minSamples"),
    Invalid(
        "guard-min-samples-huge",
        edited(("analysis.guards[0].minSamples", 10**9)),
        "spec.analysis.guards[0].minSamples",
    ),
    Invalid(
        "max-inconclusive-huge", edited(("analysis.maxInconclusive", 10**6)), "spec.analysis.maxInconclusive"
    ),
    Invalid(
        "gateway-name-too-long",
        edited(("traffic.istio.gateways", ["g" * 254])),
        "spec.traffic.istio.gateways[0]",
    ),
    Invalid(
        "full-step-with-relative-guard",
        edited(("strategy.canary.steps[1].weight", 100)),
        "spec.strategy.canary.steps",
        FULL_STEP_WITH_RELATIVE_GUARD,
    ),
    Invalid(
        "full-step-with-relative-override",
        edited(
            ("strategy.canary.steps[1].weight", 100),
            ("analysis.guards[1]", {"name": "p99", "metric": "latencyP99", "max": 0.5}),
            ("analysis.guards[0].slices.android", {"maxDeltaToStable": 0.01}),
        ),
        "spec.strategy.canary.steps",
        FULL_STEP_WITH_RELATIVE_GUARD,
    ),
    # Header regexes Python accepts but RE2 (Envoy's engine, and Go's regexp in admission) refuses
    Invalid(
        "header-regex-lookahead",
        edited(("slices[1].match.headers.x-user", {"regex": "beta-(?=eu)"})),
        "spec.slices[1].match.headers[x-user].regex",
    ),
    Invalid(
        "header-regex-backreference",
        edited(("slices[1].match.headers.x-user", {"regex": "(beta)-\\1"})),
        "spec.slices[1].match.headers[x-user].regex",
    ),
    Invalid(
        "header-regex-huge-repeat",
        edited(("slices[1].match.headers.x-user", {"regex": "b{2,1001}"})),
        "spec.slices[1].match.headers[x-user].regex",
    ),
    # Unknown fields (refused with fieldValidation=Strict; see the module docstring)
    Invalid("unknown-field-under-spec", edited(("replica", 3)), "spec.replica", status=400),
    Invalid(
        "unknown-field-in-guard",
        edited(("analysis.guards[0].threshold", 0.05)),
        "spec.analysis.guards[0].threshold",
        status=400,
    ),
]


# Specs both sides must accept: corners where a lax or a literal reading would refuse them.
EDGES: Final[dict[str, dict[str, Any]]] = {
    # The API server prunes nulls of non-nullable fields (and null map values) before it validates.
    "nulls-mean-absent": edited(
        ("strategy.shadow", None),
        ("readiness", None),
        ("gates", None),
        ("analysis.window", None),
        ("analysis.guards[0].slices.android", None),
        ("slices[0].match.headers.x-region", None),
    ),
    "integers-for-numbers": edited(("analysis.guards[0].max", 1), ("strategy.shadow.mirrorPercent", 100)),
    "empty-exact-value": edited(("slices[0].match.headers.x-platform", {"exact": ""})),
    "override-for-default": edited(("analysis.guards[1].slices", {"default": {"maxRatioToStable": 1.5}})),
    # A 100% step is fine when every guard judged in canary is absolute, or relative only in shadow.
    "last-step-full-weight": edited(
        ("strategy.canary.steps[1].weight", 100),
        (
            "analysis.guards[1]",
            {"name": "p99", "metric": "latencyP99", "maxRatioToStable": 1.2, "phases": ["shadow"]},
        ),
    ),
    "compound-durations": edited(
        ("strategy.shadow.duration", "1h30m"),
        ("strategy.canary.steps[0].pause", "90s"),
        ("analysis.interval", "1500ms"),
        ("analysis.window", "1.5m"),
    ),
    "custom-metric-with-query": edited(
        ("analysis.guards[1]", {"name": "empty", "metric": "emptyResults", "query": "vector(0)", "max": 0.1}),
    ),
    "sequential-on-errors": edited(("analysis.guards[0].test", "sequential")),
    "no-slices": edited(("slices", []), ("analysis.guards[0].slices", DELETE)),
    "thirty-two-slices": edited(("slices", _slices(32)), ("analysis.guards[0].slices", DELETE)),
    "min-ready-equals-replicas": edited(("readiness.minReadyReplicas", 4)),
    "gateway-api": edited(("traffic", {"gatewayAPI": GATEWAY_API})),
    "gateway-api-fifteen-slices": edited(
        ("traffic", {"gatewayAPI": GATEWAY_API}),
        ("slices", _slices(15)),
        ("analysis.guards[0].slices", DELETE),
    ),
    "gateway-api-more-headers-first": edited(
        ("traffic", {"gatewayAPI": GATEWAY_API}),
        ("slices[0].match.headers.x-user", {"prefix": "beta-"}),
    ),
    "istio-fewer-headers-first": edited(("slices[1].match.headers.x-platform", {"exact": "android"})),
    "gateway-api-behind-a-gateway": edited(
        (
            "traffic",
            {
                "gatewayAPI": {
                    "httpRoute": "recommender",
                    "parentRefs": [
                        {"name": "public", "namespace": "gateways", "sectionName": "https", "port": 443}
                    ],
                    "hostnames": ["recommender.example.com", "*.ml.example.com"],
                    "port": 9000,
                }
            },
        )
    ),
    "runbook-triggers": edited(
        ("analysis.guards[0].for", "5m"),
        (
            "analysis.guards[1]",
            {"name": "nulls", "metric": "nullPredictionRate", "max": 0, "immediate": True},
        ),
        (
            "analysis.guards[0].slices.android",
            {"minRatioToStable": 0.9, "minDeltaToStable": 0.05},
        ),
    ),
    "pause-guard-holding": edited(
        (
            "analysis.guards[1]",
            {
                "name": "accuracy-drop",
                "metric": "accuracy",
                "minRatioToStable": 0.95,
                "action": "pause",
                "pauseTraffic": "hold",
                "phases": ["canary"],
            },
        ),
    ),
    "blue-green-with-preview-and-qa": edited(
        ("strategy.canary", DELETE),
        ("strategy.blueGreen", {"preview": {"header": "x-preview", "duration": "1m"}, "bake": "10m"}),
        ("strategy.qaOverride", {"header": "x-canary-override", "value": {"regex": "true|1"}}),
    ),
    "blue-green-defaults": edited(("strategy.canary", DELETE), ("strategy.blueGreen", {})),
    "experiment-by-cookie": edited(
        ("strategy.canary", DELETE),
        (
            "strategy.experiment",
            {
                **AB,
                "assignment": {"cookie": "uid", "candidatePercent": 20},
                "baselineRate": 0.05,
                "maxTrialsPerArm": 100000,
                "onNoDifference": "promote",
                "decideOn": "overall",
            },
        ),
    ),
}
