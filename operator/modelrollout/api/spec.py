"""The ModelRollout spec: what a user declares. The CRD schema is generated from these models."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, model_validator

from modelrollout.api.common import (
    URL_PATTERN,
    Between,
    DnsLabel,
    Duration,
    NullsPruned,
    Rule,
    SpecModel,
    enforce,
    rules_schema,
    unique,
)
from modelrollout.api.guards import RELATIVE_FIELDS, Analysis
from modelrollout.api.matching import HEADER_NAME_MESSAGE, HEADER_PATTERN, StringMatch, re2_error
from modelrollout.api.strategy import MAX_STEPS as MAX_STEPS
from modelrollout.api.strategy import CanaryStep as CanaryStep
from modelrollout.api.strategy import CanaryStrategy as CanaryStrategy
from modelrollout.api.strategy import ShadowStrategy as ShadowStrategy
from modelrollout.api.strategy import Strategy
from modelrollout.api.traffic import (
    MAX_GATEWAY_API_SLICES,
    Traffic,
    headers_descend,
)

MAX_SLICES = 32
MAX_FEATURES = 256
FeatureType = Literal["string", "int", "float", "bool", "bytes", "string[]", "int[]", "float[]"]


# Model and serving schema --------------------------------------------------------------------------------
class Feature(SpecModel):
    """One input feature of the model's serving schema."""

    name: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z_][A-Za-z0-9_.-]*$")
    """Feature name as it appears in requests."""
    type: FeatureType
    """Value type: string, int, float, bool, bytes, or a list of string, int or float (e.g. float[])."""
    required: bool = True
    """Whether requests must carry this feature (default true)."""


DUPLICATE_FEATURE = "Duplicate value"
"""What the API server says of a second feature with a name already used (features are a list-type map)."""


class ServingSchema(SpecModel):
    """The request schema a model version serves; used to decide whether rolling back is safe."""

    version: int = Field(ge=0)
    """Schema version number (informational; compatibility is computed from the features)."""
    # Unique names as a list-type map, which the API server checks in linear time: a CEL rule comparing every
    # pair exceeded the per-call cost limit at 256 long names, refusing every status write that carried them.
    features: list[Feature] = Field(
        default_factory=list,
        max_length=MAX_FEATURES,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    """Features the version reads; names are unique."""
    extra_features: Literal["ignore", "reject"] = "ignore"
    """What the version does with fields it does not know: ignore them, or reject the request (default ignore)."""

    @model_validator(mode="after")
    def _unique_names(self) -> ServingSchema:
        seen: set[str] = set()
        for index, feature in enumerate(self.features):
            if feature.name in seen:
                raise ValueError(
                    f"features[{index}]: {DUPLICATE_FEATURE}: name {feature.name!r} is already used"
                )
            seen.add(feature.name)
        return self


class ModelRef(SpecModel):
    """The model and the version to roll out."""

    name: DnsLabel
    """Model name (handed to the server as MODEL_NAME and used as the `model` metric label)."""
    version: str = Field(min_length=1, max_length=40, pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    """Version to serve; changing it starts a rollout from the stable version (lowercase, digits, '-' and '.')."""
    uri: str = Field(min_length=1, max_length=1024)
    """Where the server loads the model from (handed to the server as MODEL_URI)."""
    serving_schema: ServingSchema | None = Field(default=None, alias="schema")
    """Serving schema of this version, for rollback-safety checks."""


# Readiness ------------------------------------------------------------------------------------------------
class Readiness(SpecModel):
    """How the operator knows a replica has loaded its model."""

    model_ready_path: str = Field(default="/ready", pattern=r"^/[!-~]*$", max_length=256)
    """HTTP path that answers 200 only once the model is loaded and warmed up (default /ready)."""
    port: int = Field(default=8080, ge=1, le=65535)
    """Container port serving the model (default 8080)."""
    load_timeout: Annotated[Duration, Between("1s", "24h")] = "10m"
    """Budget for loading the model before the pod is restarted: the startupProbe's window (default 10m)."""
    min_ready_replicas: int = Field(default=1, ge=1, le=1000)
    """Model-ready candidate replicas required before any traffic moves to the candidate (default 1)."""
    probe_period: Annotated[Duration, Between("1s", "5m")] = "5s"
    """How often the readiness and startup probes run (default 5s)."""


_LOWERCASE_HEADERS = Rule(
    cel=f"self.headers.all(k, k.matches('{HEADER_PATTERN}'))",
    message=HEADER_NAME_MESSAGE,
    check=lambda m: all(re.fullmatch(HEADER_PATTERN, k) for k in m.headers),
    field_path=".headers",
)


class SliceMatch(SpecModel):
    """Which requests belong to a slice: all listed headers must match."""

    model_config = ConfigDict(json_schema_extra=rules_schema(_LOWERCASE_HEADERS))

    headers: Annotated[dict[str, StringMatch], NullsPruned] = Field(min_length=1, max_length=8)
    """Header name (lowercase) to value match."""

    @model_validator(mode="after")
    def _rules(self) -> SliceMatch:
        enforce(self, _LOWERCASE_HEADERS)
        return self


_NOT_DEFAULT = Rule(
    cel="self.name != 'default'",
    message="'default' is the implicit slice of unmatched traffic and cannot be declared",
    check=lambda s: s.name != "default",
    field_path=".name",
)


class Slice(SpecModel):
    """A user segment that gets its own route, the same canary share and its own verdict."""

    model_config = ConfigDict(json_schema_extra=rules_schema(_NOT_DEFAULT))

    name: DnsLabel
    """Slice name (a DNS label; 'default' is reserved for unmatched traffic)."""
    match: SliceMatch
    """Requests of this slice."""

    @model_validator(mode="after")
    def _rules(self) -> Slice:
        enforce(self, _NOT_DEFAULT)
        for header, value in self.match.headers.items():
            error = value.regex and re2_error(value.regex)
            if error:
                raise ValueError(
                    f"match.headers.{header}.regex: slice {self.name}: {value.regex!r} is not valid RE2 "
                    f"({error}); Istio's proxies match headers with RE2, so no route could be written"
                )
        return self


# Rollback, gates and the spec ------------------------------------------------------------------------------
class Webhook(SpecModel):
    """An HTTP endpoint the operator POSTs JSON to."""

    url: str = Field(pattern=URL_PATTERN, max_length=1024)
    """Endpoint URL."""
    timeout: Annotated[Duration, Between("100ms", "60s")] = "10s"
    """Timeout of the whole request, from connecting to the last byte of the answer (default 10s)."""


class Notification(SpecModel):
    """Where decisions are sent."""

    webhook: Webhook
    """POST every decision with its evidence here."""


class Rollback(SpecModel):
    """What happens around a rollback."""

    scale_down_delay: Annotated[Duration, Between("0s", "168h")] = "10m"
    """How long a rolled-back candidate stays up for inspection (default 10m)."""
    keep_previous_warm: Annotated[Duration, Between("0s", "168h")] = "15m"
    """How long the previous stable version stays up after a promotion, for a fast undo (default 15m)."""
    rollback_safety: Literal["block", "warn"] = "block"
    """When stable cannot serve requests shaped for the candidate: block the rollout, or warn (default block)."""
    notify: list[Notification] = Field(default_factory=list, max_length=8)
    """Decision notifications."""


class Gate(SpecModel):
    """A preflight check that must explicitly allow the rollout before the candidate is deployed."""

    name: DnsLabel
    """Gate name."""
    webhook: Webhook
    """Endpoint answering {"allowed": true|false, "reason": "..."}."""


_SLICES_UNIQUE = Rule(
    cel="!has(self.slices) || self.slices.all(s, self.slices.exists_one(t, t.name == s.name))",
    message="slice names must be unique",
    check=lambda s: unique(s.slices, "name"),
    field_path=".slices",
)
_OVERRIDES_NAME_SLICES = Rule(
    cel=(
        "self.analysis.guards.all(g, !has(g.slices) || g.slices.all(k, k == 'default' || "
        "(has(self.slices) && self.slices.exists(s, s.name == k))))"
    ),
    message="guard slice overrides must name a declared slice or 'default'",
    check=lambda s: all(
        key == "default" or any(sl.name == key for sl in s.slices)
        for g in s.analysis.guards
        for key in g.slices
    ),
    field_path=".analysis.guards",
)
_GATES_UNIQUE = Rule(
    cel="!has(self.gates) || self.gates.all(g, self.gates.exists_one(h, h.name == g.name))",
    message="gate names must be unique",
    check=lambda s: unique(s.gates, "name"),
    field_path=".gates",
)
_MIN_READY_FITS = Rule(
    cel="!has(self.readiness) || !has(self.readiness.minReadyReplicas) || self.readiness.minReadyReplicas <= self.replicas",
    message="readiness.minReadyReplicas cannot exceed replicas",
    check=lambda s: s.readiness.min_ready_replicas <= s.replicas,
    field_path=".readiness.minReadyReplicas",
)

FULL_STEP_WITH_RELATIVE_GUARD = (
    "a canary step of weight 100 leaves stable without requests, so a guard bound relative to stable "
    "(maxRatioToStable, maxDeltaToStable, minRatioToStable, minDeltaToStable) is never judged there and the step holds forever: end the steps "
    "below 100 (promotion moves the rest) or bound those guards with max or min"
)
_RELATIVE_NEEDS_STABLE = Rule(
    cel=(
        "!has(self.strategy.canary) || !self.strategy.canary.steps.exists(s, s.weight == 100) || "
        "!self.analysis.guards.exists(g, "
        "(!has(g.phases) || 'canary' in g.phases) && ("
        + " || ".join(f"has(g.{name})" for name in RELATIVE_FIELDS)
        + " || (has(g.slices) && g.slices.exists(k, "
        + " || ".join(f"has(g.slices[k].{name})" for name in RELATIVE_FIELDS)
        + "))))"
    ),
    message=FULL_STEP_WITH_RELATIVE_GUARD,
    check=lambda s: (
        s.strategy.canary is None
        or not any(step.weight == 100 for step in s.strategy.canary.steps)
        or not any(
            "canary" in g.phases and any(t.relative() for t in [g, *g.slices.values()])
            for g in s.analysis.guards
        )
    ),
    field_path=".strategy.canary.steps",
)


_GATEWAY_API_FITS = Rule(
    cel=(
        f"!has(self.traffic.gatewayAPI) || !has(self.slices) || size(self.slices) <= {MAX_GATEWAY_API_SLICES}"
    ),
    message=(
        f"with gatewayAPI at most {MAX_GATEWAY_API_SLICES} slices: an HTTPRoute holds 16 rules, "
        "one per slice and one for 'default'"
    ),
    check=lambda s: s.traffic.gateway_api is None or len(s.slices) <= MAX_GATEWAY_API_SLICES,
    field_path=".slices",
)


_GATEWAY_API_ORDER = Rule(
    cel=(
        "!has(self.traffic.gatewayAPI) || !has(self.slices) || "
        "self.slices.map(s, 0 - size(s.match.headers)).isSorted()"
    ),
    message=(
        "with gatewayAPI, list slices with more headers first: Gateway API gives a request to the matching rule "
        "with the most header matches, so only then does the first matching slice win, as with Istio"
    ),
    check=lambda s: s.traffic.gateway_api is None or headers_descend(s.slices),
    field_path=".slices",
)


_HEADER_ROUTES_NEED_ISTIO = Rule(
    cel=(
        "!has(self.traffic.gatewayAPI) || (!has(self.strategy.qaOverride) && !has(self.strategy.experiment) && "
        "!(has(self.strategy.blueGreen) && has(self.strategy.blueGreen.preview)))"
    ),
    message="strategy.qaOverride, strategy.experiment and strategy.blueGreen.preview need traffic.istio (the "
    "gatewayAPI provider renders no header routes to the candidate yet)",
    check=lambda s: (
        s.traffic.gateway_api is None
        or (
            s.strategy.qa_override is None
            and s.strategy.experiment is None
            and (s.strategy.blue_green is None or s.strategy.blue_green.preview is None)
        )
    ),
    field_path=".strategy",
)


class ModelRolloutSpec(SpecModel):
    """Desired state: the model version to serve and how to get there safely."""

    model_config = ConfigDict(
        json_schema_extra=rules_schema(
            _SLICES_UNIQUE,
            _OVERRIDES_NAME_SLICES,
            _GATES_UNIQUE,
            _MIN_READY_FITS,
            _GATEWAY_API_FITS,
            _GATEWAY_API_ORDER,
            _HEADER_ROUTES_NEED_ISTIO,
            _RELATIVE_NEEDS_STABLE,
        )
    )

    model: ModelRef
    """Model and version."""
    template: dict[str, Any] = Field(json_schema_extra={"x-kubernetes-preserve-unknown-fields": True})
    """PodTemplateSpec of the serving runtime; the operator adds labels, MODEL_* env and probes."""
    replicas: int = Field(ge=1, le=1000)
    """Replicas of the stable version; the candidate scales to match."""
    readiness: Readiness = Field(default_factory=Readiness)
    """Model-load readiness."""
    traffic: Traffic
    """Traffic routing."""
    slices: list[Slice] = Field(default_factory=list, max_length=MAX_SLICES)
    """Ordered slices; unmatched traffic is the implicit slice 'default'."""
    strategy: Strategy
    """Shadow, then canary steps or a blue-green switch, and promotion."""
    analysis: Analysis
    """Per-slice guards."""
    rollback: Rollback = Field(default_factory=Rollback)
    """Rollback policy."""
    gates: list[Gate] = Field(default_factory=list, max_length=8)
    """Preflight gates."""

    @model_validator(mode="after")
    def _rules(self) -> ModelRolloutSpec:
        enforce(
            self,
            _SLICES_UNIQUE,
            _OVERRIDES_NAME_SLICES,
            _GATES_UNIQUE,
            _MIN_READY_FITS,
            _GATEWAY_API_FITS,
            _GATEWAY_API_ORDER,
            _HEADER_ROUTES_NEED_ISTIO,
            _RELATIVE_NEEDS_STABLE,
        )
        return self

    def slice_names(self) -> list[str]:
        """Every slice in route order, ending with the implicit 'default'."""
        return [s.name for s in self.slices] + ["default"]

    def service_port(self) -> int:
        """The port of the per-version Services, which the routes' destinations name."""
        return self.traffic.port or self.readiness.port
