"""Sandbox scenarios: a simulated fleet, its traffic, a ModelRollout, its update, faults and the expected end.

A scenario is a YAML file (format: docs/scenarios.md). `load_scenario` validates all of it up front and names
the offending field in `ScenarioError`, so a demo never fails half-way on a typo. The rollout manifest is
namespace-agnostic and may use the placeholders `${NAMESPACE}` and `${PROMETHEUS_URL}`; the runner renders it
with `Scenario.manifest(...)` and `Scenario.updated_manifest(...)`.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist
from typing import Any, Literal, get_args

import yaml
from pydantic import Field, PrivateAttr, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from modelrollout.api.common import DnsLabel, Duration, Model, seconds
from modelrollout.api.spec import ModelRolloutSpec, ServingSchema, Slice
from modelrollout.api.status import Phase
from modelrollout.identity import DEFAULT_SLICE
from modelrollout.sandbox.trafficgen import SliceLoad
from modelrollout.serving.slices import SliceClassifier

PLACEHOLDERS = ("NAMESPACE", "PROMETHEUS_URL")
# Values the placeholders take while a scenario is validated, before the runner knows the real ones.
_STAND_INS = {"NAMESPACE": "scenario", "PROMETHEUS_URL": "http://127.0.0.1:9090"}
_PLACEHOLDER = re.compile(r"\$\{([^}]*)\}")
_VERSION_PATTERN = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"  # as ModelRef.version
_Z99 = NormalDist().inv_cdf(0.99)


class ScenarioError(ValueError):
    """A scenario file is unreadable or invalid; each line names a field and what is wrong with it."""


# Fleet behaviour -----------------------------------------------------------------------------------------
class LatencySpec(Model):
    """Request latency: a lognormal distribution through the given median and 99th percentile."""

    p50: Duration
    """Median latency, e.g. 20ms."""
    p99: Duration
    """99th percentile, e.g. 80ms; at least p50 (equal means a constant latency)."""

    @model_validator(mode="after")
    def _ordered(self) -> LatencySpec:
        if seconds(self.p50) <= 0:
            raise ValueError("p50 must be above 0")
        if seconds(self.p99) < seconds(self.p50):
            raise ValueError(f"p99 ({self.p99}) must not be below p50 ({self.p50})")
        return self

    def lognormal(self) -> tuple[float, float]:
        """(mu, sigma) of the lognormal whose median is p50 and whose 99th percentile is p99, in seconds."""
        mu = math.log(seconds(self.p50))
        return mu, (math.log(seconds(self.p99)) - mu) / _Z99


class ScoreSpec(Model):
    """Distribution of prediction scores: exactly one of beta, uniform or constant."""

    beta: tuple[float, float] | None = None
    """Beta(a, b) with a, b > 0, e.g. [2, 5]."""
    uniform: tuple[float, float] | None = None
    """Uniform on [low, high] within [0, 1]."""
    constant: float | None = Field(default=None, ge=0, le=1)
    """Always this score."""

    @model_validator(mode="after")
    def _one(self) -> ScoreSpec:
        given = [name for name in ("beta", "uniform", "constant") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(
                f"set exactly one of beta, uniform or constant (got {', '.join(given) or 'none'})"
            )
        if self.beta is not None and min(self.beta) <= 0:
            raise ValueError("beta parameters must be above 0")
        if self.uniform is not None and not 0 <= self.uniform[0] <= self.uniform[1] <= 1:
            raise ValueError("uniform needs 0 <= low <= high <= 1")
        return self


class SliceBehaviour(Model):
    """How a version answers one slice's requests; unset fields come from the version's default."""

    error_rate: float | None = Field(default=None, ge=0, le=1)
    """Fraction of requests answered with HTTP 500."""
    latency: LatencySpec | None = None
    """Latency distribution."""
    score: ScoreSpec | None = None
    """Prediction score distribution."""


@dataclass(frozen=True)
class ResolvedBehaviour:
    """A slice's behaviour with every field set."""

    error_rate: float
    latency: LatencySpec
    score: ScoreSpec


BUILTIN_BEHAVIOUR = ResolvedBehaviour(
    error_rate=0.0, latency=LatencySpec(p50="10ms", p99="40ms"), score=ScoreSpec(beta=(2.0, 5.0))
)


class VersionBehaviour(Model):
    """One model version of the simulated fleet."""

    load_time: Duration = "0s"
    """Time to load the model; the model-ready endpoint answers 503 until it (and the warm-up) is over."""
    load_time_max: Duration | None = None
    """With it, each server draws its load time uniformly between load_time and this (replicas of one
    version then finish loading at different times, as large models do)."""
    warmup_inferences: int = Field(default=3, ge=0, le=1000)
    """Inferences run after loading, before the version reports ready."""
    fail_load: bool = False
    """Loading fails after load_time: the version never becomes ready."""
    default: SliceBehaviour = Field(default_factory=SliceBehaviour)
    """Every slice's behaviour (unset fields: error rate 0, latency p50 10ms, p99 40ms, score beta [2, 5])."""
    slices: dict[str, SliceBehaviour] = Field(default_factory=dict)
    """Per-slice overrides of the default, keyed by slice name (or 'default' for unmatched traffic)."""

    def for_slice(self, name: str) -> ResolvedBehaviour:
        """The behaviour of one slice: its override, then the version's default, then the built-in values."""
        layers = [self.slices.get(name), self.default]

        def pick(field: str, builtin: Any) -> Any:
            for layer in layers:
                if layer is not None and getattr(layer, field) is not None:
                    return getattr(layer, field)
            return builtin

        return ResolvedBehaviour(
            error_rate=pick("error_rate", BUILTIN_BEHAVIOUR.error_rate),
            latency=pick("latency", BUILTIN_BEHAVIOUR.latency),
            score=pick("score", BUILTIN_BEHAVIOUR.score),
        )


class FleetSpec(Model):
    """The simulated model servers, one process per version."""

    seed: int = 1
    """Base seed of every server's random numbers (each version derives its own)."""
    versions: dict[str, VersionBehaviour] = Field(min_length=1)
    """Behaviour per model version; must cover the rollout's version and the update's."""

    @field_validator("versions")
    @classmethod
    def _version_names(cls, versions: dict[str, VersionBehaviour]) -> dict[str, VersionBehaviour]:
        for name in versions:
            if not re.fullmatch(_VERSION_PATTERN, name):
                raise ValueError(f"{name!r} is not a model version (lowercase letters, digits, '-' and '.')")
        return versions


# Traffic -------------------------------------------------------------------------------------------------
class SliceTraffic(Model):
    """Requests of one slice; a bare number is the rate."""

    rate: float = Field(ge=0, le=10_000)
    """Requests per second."""
    headers: dict[str, str] | None = None
    """Headers sent with every request (default: derived from the slice's match)."""

    @model_validator(mode="before")
    @classmethod
    def _bare_rate(cls, data: Any) -> Any:
        if isinstance(data, int | float) and not isinstance(data, bool):
            return {"rate": data}
        return data


class Probe(Model):
    """Requests outside the user slices, e.g. testers sending the QA override header."""

    name: DnsLabel
    """Name in the traffic counters (not a slice of the rollout)."""
    rate: float = Field(gt=0, le=1000)
    """Requests per second."""
    headers: dict[str, str] = Field(min_length=1)
    """Headers sent with every request, e.g. {x-canary-override: "true"}."""


class TrafficSpec(Model):
    """The user traffic the generator sends through the live VirtualService."""

    slices: dict[str, SliceTraffic] = Field(min_length=1)
    """Per-slice traffic keyed by slice name ('default' for requests matching no slice)."""
    probes: list[Probe] = Field(default_factory=list)
    """Extra requests that are not users', counted under their own name (not part of any slice's load)."""
    arrival: Literal["poisson", "uniform"] = "poisson"
    """poisson: exponential gaps between requests; uniform: evenly spaced."""
    concurrency: int = Field(default=64, ge=1, le=4096)
    """Requests in flight at most; beyond it requests are dropped and counted as such."""
    body: dict[str, Any] = Field(default_factory=lambda: {"user_id": "sandbox-user", "items": 10})
    """JSON features sent in every request."""


# Rollout and update --------------------------------------------------------------------------------------
class RolloutMetadata(Model):
    """Metadata of the scenario's ModelRollout; the runner sets the namespace."""

    name: DnsLabel
    """Name of the ModelRollout."""
    labels: dict[str, str] = Field(default_factory=dict)
    """Labels."""
    annotations: dict[str, str] = Field(default_factory=dict)
    """Annotations."""

    @model_validator(mode="before")
    @classmethod
    def _no_namespace(cls, data: Any) -> Any:
        if isinstance(data, dict) and "namespace" in data:
            raise PydanticCustomError(
                "namespace_set", "leave namespace out: scenarios are namespace-agnostic, the runner sets it"
            )
        return data


class RolloutManifest(Model):
    """The ModelRollout for the initial (stable) version."""

    api_version: Literal["modelrollout.io/v1alpha1"]
    """modelrollout.io/v1alpha1."""
    kind: Literal["ModelRollout"]
    """ModelRollout."""
    metadata: RolloutMetadata
    """Name, labels and annotations (no namespace)."""
    spec: ModelRolloutSpec
    """The spec, validated with placeholders replaced by stand-in values."""


class ModelUpdate(Model):
    """The new model version the rollout moves to."""

    version: str = Field(min_length=1, max_length=40, pattern=_VERSION_PATTERN)
    """New version (different from the rollout's)."""
    uri: str = Field(min_length=1, max_length=1024)
    """New model URI."""
    serving_schema: ServingSchema | None = Field(default=None, alias="schema")
    """New serving schema (default: keep the rollout's)."""


class Update(Model):
    """What changes in the ModelRollout to start the rollout."""

    model: ModelUpdate
    """New model version, URI and optionally schema."""
    template_annotations: dict[str, str] = Field(default_factory=dict)
    """Merged into spec.template.metadata.annotations, e.g. sandbox.modelrollout.io/load-delay: 8s."""


# Events --------------------------------------------------------------------------------------------------
EventAction = Literal[
    "stop-prometheus",
    "restart-operator",
    "stop-operator",
    "stop-fleet-version",
    "fail-replica-load",
    "pause",
    "resume",
    "promote",
    "abort",
]
# Faults that the runner undoes after `duration` (without one they last until the end).
UNDOABLE_ACTIONS = ("stop-prometheus", "stop-operator", "stop-fleet-version")
VERSION_ACTIONS = ("stop-fleet-version", "fail-replica-load")
_STATUS_FIELD = re.compile(r"^(?:[a-z][A-Za-z0-9]*|slice\.[a-z0-9]([-a-z0-9]*[a-z0-9])?\.[a-z][A-Za-z0-9]*)$")
_COMPARISON = re.compile(r"^\s*([^\s=!<>]+)\s*(==|!=|<=|>=|<|>)\s*(\"[^\"]*\"|'[^']*'|[^\s\"']+)\s*$")
_PHASES: tuple[str, ...] = get_args(Phase)


@dataclass(frozen=True)
class Comparison:
    """`field op value` on the status, e.g. `phase == Canary` or `slice.android.verdict == Fail`."""

    field: str
    op: str
    value: str

    def holds(self, status: Mapping[str, Any]) -> bool:
        actual = _status_value(status, self.field)
        if actual is None:
            return False
        number = _number(actual)
        if number is not None:
            try:
                return _OPERATORS[self.op](number, float(self.value))
            except ValueError:
                pass  # a number compared with text: only == and != make sense
        if self.op in ("==", "!="):
            return _OPERATORS[self.op](str(actual), self.value)
        return False  # text does not order


_OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "==": lambda a, b: bool(a == b),
    "!=": lambda a, b: bool(a != b),
    "<": lambda a, b: bool(a < b),
    "<=": lambda a, b: bool(a <= b),
    ">": lambda a, b: bool(a > b),
    ">=": lambda a, b: bool(a >= b),
}


def parse_condition(text: str) -> list[Comparison]:
    """Parses `a == b and c >= 2`: comparisons of status fields joined by `and`. Raises ValueError."""
    comparisons = []
    for part in re.split(r"\s+and\s+", text.strip()):
        found = _COMPARISON.match(part)
        if not found:
            raise ValueError(
                f"cannot read {part!r}: write <field> <op> <value> with op one of == != < <= > >="
            )
        field, op, value = found.group(1), found.group(2), found.group(3).strip("\"'")
        if not _STATUS_FIELD.match(field):
            raise ValueError(f"{field!r} is not a status field (e.g. phase, step, slice.android.verdict)")
        if field == "phase" and value not in _PHASES:
            raise ValueError(f"unknown phase {value!r}; phases are {', '.join(_PHASES)}")
        comparisons.append(Comparison(field, op, value))
    return comparisons


def _status_value(status: Mapping[str, Any], field: str) -> Any:
    if field.startswith("slice."):
        _, name, key = field.split(".", 2)
        for entry in status.get("slices") or []:
            if isinstance(entry, Mapping) and entry.get("name") == name:
                return entry.get(key)
        return None
    return status.get(field)


def _number(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


class Event(Model):
    """A timed fault or operation the demo runner performs."""

    after: Duration | None = None
    """When: this long after the update is applied."""
    when: str | None = None
    """When: the first time this condition on the status holds, e.g. `phase == Canary and step == 2`."""
    action: EventAction
    """The action (see EventAction); stop-* actions are faults, the others act as a person would."""
    duration: Duration | None = None
    """How long a stop lasts before the runner starts the component again (stop-* actions only)."""
    version: str | None = None
    """The version (or 'stable' / 'candidate') whose server stop-fleet-version stops."""

    @model_validator(mode="after")
    def _consistent(self) -> Event:
        if (self.after is None) == (self.when is None):
            raise ValueError("set exactly one of after or when")
        if self.when is not None:
            try:
                parse_condition(self.when)
            except ValueError as error:
                raise ValueError(f"when: {error}") from None
        if self.duration is not None and self.action not in UNDOABLE_ACTIONS:
            raise ValueError(f"duration: only {', '.join(UNDOABLE_ACTIONS)} take a duration")
        if (self.version is not None) != (self.action in VERSION_ACTIONS):
            raise ValueError(f"version: required by {' and '.join(VERSION_ACTIONS)} and only by them")
        return self

    def condition(self) -> list[Comparison]:
        """The parsed `when` (empty for timed events)."""
        return parse_condition(self.when) if self.when is not None else []

    def due(self, elapsed: float, status: Mapping[str, Any]) -> bool:
        """Whether the event fires now: `elapsed` seconds after the update, with this status."""
        if self.after is not None:
            return elapsed >= seconds(self.after)
        return all(c.holds(status) for c in self.condition())


class Expectation(Model):
    """How the rollout must end."""

    phase: Phase
    """Final phase, e.g. Succeeded or RolledBack."""
    message: list[str] = Field(default_factory=list)
    """Texts the final status message must contain."""
    stable_version: str | None = None
    """status.stableVersion at the end (e.g. the update's version after a promotion)."""

    def failures(self, status: Mapping[str, Any]) -> list[str]:
        """What about a final status does not meet the expectation (empty: met)."""
        problems = []
        if status.get("phase") != self.phase:
            problems.append(f"phase is {status.get('phase')!r}, expected {self.phase!r}")
        message = str(status.get("message") or "")
        problems += [
            f"message {message!r} does not contain {text!r}" for text in self.message if text not in message
        ]
        if self.stable_version is not None and status.get("stableVersion") != self.stable_version:
            problems.append(
                f"stableVersion is {status.get('stableVersion')!r}, expected {self.stable_version!r}"
            )
        return problems


# The scenario --------------------------------------------------------------------------------------------
class Scenario(Model):
    """A complete sandbox scenario."""

    name: DnsLabel
    """Scenario name."""
    description: str = ""
    """What it shows."""
    fleet: FleetSpec
    """Simulated model servers per version."""
    traffic: TrafficSpec
    """Per-slice request rates."""
    rollout: RolloutManifest
    """The ModelRollout of the initial (stable) version."""
    update: Update
    """The change that starts the rollout."""
    events: list[Event] = Field(default_factory=list)
    """Faults and operations during the rollout."""
    expect: Expectation
    """The expected end."""
    timeout: Duration = "5m"
    """How long the runner waits for the expected end after the update."""
    node: Literal["kwok", "real"] = "kwok"
    """Where the model servers run: `kwok` (local processes beside kwok's simulated pods; model load is a
    readiness delay) or `real` (pods of the model-server image on the sandbox's real node, whose kubelet runs
    the rendered startup and readiness probes)."""

    _raw_rollout: dict[str, Any] = PrivateAttr(default_factory=dict)
    _raw_update: dict[str, Any] = PrivateAttr(default_factory=dict)

    @model_validator(mode="wrap")
    @classmethod
    def _placeholders(cls, data: Any, handler: Callable[[Any], Scenario]) -> Scenario:
        # Validation sees stand-in values; the raw manifest is kept so the runner can render the real ones.
        if not isinstance(data, dict):
            return handler(data)
        raw_rollout = copy.deepcopy(data.get("rollout"))
        raw_update = copy.deepcopy(data.get("update"))
        data = dict(data)
        for key in ("rollout", "update"):
            if key in data:
                data[key] = _substitute(data[key], _STAND_INS, key)
        scenario = handler(data)
        scenario._raw_rollout = raw_rollout if isinstance(raw_rollout, dict) else {}
        scenario._raw_update = raw_update if isinstance(raw_update, dict) else {}
        return scenario

    @model_validator(mode="after")
    def _coherent(self) -> Scenario:
        spec = self.rollout.spec
        stable, candidate = spec.model.version, self.update.model.version
        if candidate == stable:
            raise ValueError(f"update.model.version: {candidate!r} is already the rollout's version")
        missing = [v for v in (stable, candidate) if v not in self.fleet.versions]
        if missing:
            raise ValueError(f"fleet.versions: no behaviour for version(s) {', '.join(missing)}")
        names = spec.slice_names()
        for version, behaviour in self.fleet.versions.items():
            for slice_name in behaviour.slices:
                if slice_name not in names:
                    raise ValueError(
                        f"fleet.versions.{version}.slices.{slice_name}: not a slice of the rollout "
                        f"(slices: {', '.join(names)})"
                    )
        for slice_name in self.traffic.slices:
            if slice_name not in names:
                raise ValueError(
                    f"traffic.slices.{slice_name}: not a slice of the rollout (slices: {', '.join(names)})"
                )
        for index, probe in enumerate(self.traffic.probes):
            if probe.name in names:
                raise ValueError(
                    f"traffic.probes[{index}].name: {probe.name!r} is a slice of the rollout; a probe's "
                    "requests are counted apart from the slices"
                )
        self.slice_loads()  # raises when a slice's headers cannot be derived or land in another slice
        for event in self.events:
            if event.version not in (None, "stable", "candidate", stable, candidate):
                raise ValueError(f"events: version {event.version!r} is neither {stable} nor {candidate}")
            if event.action == "fail-replica-load" and self.node != "real":
                raise ValueError("events: fail-replica-load needs `node: real` (a replica is a pod there)")
            if event.action == "stop-fleet-version" and self.node == "real":
                raise ValueError(
                    "events: stop-fleet-version stops a local server; with `node: real` there is none"
                )
        _validate_spec(self._apply_update(self.rollout.spec.wire()), "update")
        return self

    # Rendering ----------------------------------------------------------------------------------------
    @property
    def stable_version(self) -> str:
        return self.rollout.spec.model.version

    @property
    def candidate_version(self) -> str:
        return self.update.model.version

    def slices(self) -> list[Slice]:
        return list(self.rollout.spec.slices)

    def slice_loads(self) -> list[SliceLoad]:
        """What the traffic generator sends per slice: rate, headers (explicit or derived) and body."""
        classifier = SliceClassifier(self.rollout.spec.slices)
        by_name = {s.name: s for s in self.rollout.spec.slices}
        loads = []
        for name, traffic in self.traffic.slices.items():
            headers = traffic.headers
            if headers is None:
                headers = {} if name == DEFAULT_SLICE else derive_headers(by_name[name])
                if headers is None:
                    raise ValueError(
                        f"traffic.slices.{name}.headers: cannot derive headers from the slice's regex match; "
                        "give them explicitly"
                    )
            headers = {k.lower(): v for k, v in headers.items()}
            landed = classifier.classify(headers)
            if landed != name:
                raise ValueError(
                    f"traffic.slices.{name}.headers: {headers} would land in slice {landed!r}, not {name!r}"
                )
            loads.append(
                SliceLoad(name=name, rate=traffic.rate, headers=headers, body=dict(self.traffic.body))
            )
        return loads

    def loads(self) -> list[SliceLoad]:
        """Everything the generator sends: the slices' loads, then the probes'."""
        probes = [
            SliceLoad(
                name=probe.name,
                rate=probe.rate,
                headers={k.lower(): v for k, v in probe.headers.items()},
                body=dict(self.traffic.body),
            )
            for probe in self.traffic.probes
        ]
        return [*self.slice_loads(), *probes]

    def manifest(self, namespace: str, prometheus_url: str) -> dict[str, Any]:
        """The initial ModelRollout as it is applied: placeholders filled in and the namespace set."""
        rendered = _substitute(
            self._raw_rollout, {"NAMESPACE": namespace, "PROMETHEUS_URL": prometheus_url}, "rollout"
        )
        rendered.setdefault("metadata", {})["namespace"] = namespace
        _validate_spec(rendered["spec"], "rollout.spec")
        return dict(rendered)

    def updated_manifest(self, namespace: str, prometheus_url: str) -> dict[str, Any]:
        """The ModelRollout after the update: new model version, URI, schema and template annotations."""
        rendered = self.manifest(namespace, prometheus_url)
        rendered["spec"] = self._apply_update(rendered["spec"])
        _validate_spec(rendered["spec"], "update")
        return rendered

    def _apply_update(self, spec: dict[str, Any]) -> dict[str, Any]:
        spec = copy.deepcopy(spec)
        model = spec.setdefault("model", {})
        model["version"] = self.update.model.version
        model["uri"] = self.update.model.uri
        if self.update.model.serving_schema is not None:
            model["schema"] = self.update.model.serving_schema.wire()
        if self.update.template_annotations:
            metadata = spec.setdefault("template", {}).setdefault("metadata", {})
            metadata["annotations"] = {
                **(metadata.get("annotations") or {}),
                **self.update.template_annotations,
            }
        return spec


def derive_headers(slice_: Slice) -> dict[str, str] | None:
    """Headers that match a slice: exact -> the value, prefix -> prefix + 'x', regex -> a literal it accepts.

    None when a regex is not a plain literal or an alternation of literals: give the headers explicitly then.
    """
    headers = {}
    for name, match in slice_.match.headers.items():
        if match.exact is not None:
            headers[name] = match.exact
        elif match.prefix is not None:
            headers[name] = match.prefix + "x"
        else:
            assert match.regex is not None
            sample = _regex_sample(match.regex)
            if sample is None:
                return None
            headers[name] = sample
    return headers


def _regex_sample(pattern: str) -> str | None:
    body = pattern.removeprefix("^").removesuffix("$")
    if body.startswith("(") and body.endswith(")") and body.count("(") == 1:
        body = body[1:-1].removeprefix("?:")
    first = body.split("|", 1)[0]
    if re.escape(first) != first:  # not a plain literal
        return None
    return first if re.fullmatch(pattern, first) else None


def _substitute(value: Any, variables: Mapping[str, str], path: str) -> Any:
    if isinstance(value, str):

        def replace(found: re.Match[str]) -> str:
            name = found.group(1)
            if name not in variables:
                raise PydanticCustomError(
                    "placeholder",
                    "{path}: unknown placeholder {placeholder}; known: {known}",
                    {
                        "path": path,
                        "placeholder": f"${{{name}}}",
                        "known": ", ".join(f"${{{p}}}" for p in PLACEHOLDERS),
                    },
                )
            return variables[name]

        return _PLACEHOLDER.sub(replace, value)
    if isinstance(value, dict):
        return {k: _substitute(v, variables, f"{path}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, variables, f"{path}[{i}]") for i, v in enumerate(value)]
    return value


def _validate_spec(spec: Any, where: str) -> None:
    try:
        ModelRolloutSpec.model_validate(spec)
    except ValidationError as error:
        first = error.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise ValueError(f"{where}: spec.{loc}: {_message(first['msg'])}") from None


def _message(text: str) -> str:
    return text.removeprefix("Value error, ")


def _format_errors(error: ValidationError) -> list[str]:
    lines = []
    for item in error.errors():
        loc = ".".join(str(p) for p in item["loc"])
        message = _message(item["msg"])
        lines.append(f"{loc}: {message}" if loc else message)
    return lines


def parse_scenario(document: Any, source: str = "scenario") -> Scenario:
    """Validates a parsed scenario document; ScenarioError lists every problem with its field."""
    try:
        return Scenario.model_validate(document)
    except ValidationError as error:
        lines = _format_errors(error)
        raise ScenarioError(f"{source}: invalid scenario:\n  " + "\n  ".join(lines)) from None


PROVIDERS = ("istio", "gatewayapi")
"""Traffic providers a scenario can run on (`modelrollout demo --provider`)."""


def on_provider(document: dict[str, Any], provider: str) -> dict[str, Any]:
    """The scenario document with its rollout's traffic moved to `provider`.

    Scenarios are written for Istio. For `gatewayapi` the VirtualService becomes an HTTPRoute of the same name,
    attached, as in Gateway API's mesh mode, to the Service clients call (the first label of the Istio host),
    with the same backend port. A scenario already on the provider is returned unchanged.
    """
    if provider not in PROVIDERS:
        raise ScenarioError(f"unknown traffic provider {provider!r}; choose one of {', '.join(PROVIDERS)}")
    document = copy.deepcopy(document)
    spec = ((document.get("rollout") or {}).get("spec")) or {}
    traffic = spec.get("traffic") or {}
    istio = traffic.get("istio")
    if provider == "istio" or not isinstance(istio, dict):
        return document
    if istio.get("gateways"):
        raise ScenarioError(
            "rollout.spec.traffic.istio.gateways: a gateway-bound scenario has no mesh HTTPRoute"
        )
    service = str(istio.get("host", "")).split(".", 1)[0]
    gateway: dict[str, Any] = {
        "httpRoute": istio.get("virtualService"),
        "parentRefs": [{"group": "", "kind": "Service", "name": service}],
    }
    if "port" in istio:
        gateway["port"] = istio["port"]
    spec["traffic"] = {"gatewayAPI": gateway}
    return document


def load_scenario(path: Path | str, provider: str | None = None) -> Scenario:
    """Reads and validates a scenario YAML file, moved to `provider` when given (see `on_provider`)."""
    path = Path(path)
    try:
        document = yaml.safe_load(path.read_text())
    except OSError as error:
        raise ScenarioError(f"{path}: cannot read: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise ScenarioError(f"{path}: not YAML: {error}") from None
    if not isinstance(document, dict):
        raise ScenarioError(
            f"{path}: a scenario is a mapping with name, fleet, traffic, rollout, update, expect"
        )
    if provider is not None:
        document = on_provider(document, provider)
    return parse_scenario(document, str(path))
