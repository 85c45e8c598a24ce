"""Shared building blocks of the API models: the base model, durations, names and CEL rules.

Each cross-field invariant is declared once as a `Rule`: its CEL expression goes into the CRD (admission) and
its Python predicate runs in the pydantic model (`kubectl modelrollout lint`), with the same message, so both
reject the same manifests with the same words.

The models also read input the way the API server does: a null value means the field is absent (the server
prunes nulls of non-nullable fields before validating), and spec values must already have the JSON type the
schema declares (the server refuses "4" for an integer and "yes" for a boolean; pydantic's lax mode would not).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, core_schema

# Visible ASCII only: `\s` would differ between admission (RE2: ASCII spaces) and pydantic (Unicode spaces).
URL_PATTERN = r"^https?://[!-~]+$"
# At most 5 digits before the point and 24 characters in all: no duration the pattern admits overflows Go's
# int64 nanoseconds, so the CEL bounds below (`duration(self)`) can never fail to evaluate. `[.]`, not `\.`:
# the pattern is also written inside a CEL string literal, where a backslash would need escaping.
DURATION_PATTERN = r"^([0-9]{1,5}([.][0-9]{1,9})?(ms|s|m|h))+$"
DURATION_MAX_LENGTH = 24
DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_DURATION_PART = re.compile(r"([0-9]+)(?:[.]([0-9]+))?(ms|s|m|h)")
_UNIT_NANOSECONDS = {"ms": 1_000_000, "s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000}

Duration = Annotated[
    str,
    Field(pattern=DURATION_PATTERN, max_length=DURATION_MAX_LENGTH, json_schema_extra={"example": "30s"}),
]
DnsLabel = Annotated[str, Field(pattern=DNS_LABEL_PATTERN, min_length=1, max_length=63)]


def nanoseconds(duration: str) -> int:
    """A Go-style duration such as "1m30s" or "500ms" in nanoseconds, computed as Go's time.ParseDuration
    (and so CEL's duration()) computes it, fractions included, so both sides compare bounds alike."""
    if not re.fullmatch(DURATION_PATTERN, duration):
        raise ValueError(
            f"invalid duration {duration!r}: use a number with a unit ms, s, m or h, e.g. 30s or 1m30s"
        )
    total = 0
    for whole, fraction, unit in _DURATION_PART.findall(duration):
        scale = _UNIT_NANOSECONDS[unit]
        total += int(whole) * scale
        if fraction:
            total += int(float(int(fraction)) * (float(scale) / 10 ** len(fraction)))
    return total


def seconds(duration: str) -> float:
    """Parses a Go-style duration such as "1m30s" or "500ms" into seconds."""
    return nanoseconds(duration) / 1e9


@dataclass(frozen=True)
class Between:
    """Bounds a Duration on both sides (`Annotated[Duration, Between("1s", "1h")]`): a CEL rule in the CRD and
    the same check in the model, with the same message.

    The rule first re-checks the pattern: the API server evaluates CEL rules even on a value its pattern
    refused, and `duration()` of such a value would add a second, confusing error.
    """

    low: str
    high: str

    @property
    def message(self) -> str:
        return f"must be between {self.low} and {self.high}"

    def _check(self, value: str) -> str:
        if not nanoseconds(self.low) <= nanoseconds(value) <= nanoseconds(self.high):
            raise ValueError(self.message)
        return value

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.no_info_after_validator_function(self._check, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        out = handler(schema)
        rule = (
            f"!self.matches('{DURATION_PATTERN}') || "
            f"(duration(self) >= duration('{self.low}') && duration(self) <= duration('{self.high}'))"
        )
        out.setdefault("x-kubernetes-validations", []).append({"rule": rule, "message": self.message})
        return out


def unique(items: list[Any], key: str) -> bool:
    """Whether the items' `key` attributes are all different (names of slices, guards, gates)."""
    values = [getattr(item, key) for item in items]
    return len(values) == len(set(values))


def without_nulls(data: Any) -> Any:
    """A mapping without its null values: how the API server reads an object or a map of objects."""
    if isinstance(data, dict):
        return {key: value for key, value in data.items() if value is not None}
    return data


NullsPruned = BeforeValidator(without_nulls)
"""Put on a map field whose values are objects (`Annotated[dict[str, X], NullsPruned]`): a null entry is absent."""


class Model(BaseModel):
    """Base of every API model: camelCase on the wire, unknown fields rejected, null meaning absent."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=False,
        use_attribute_docstrings=True,
        validate_default=False,
    )

    @model_validator(mode="before")
    @classmethod
    def _nulls_are_absent(cls, data: Any) -> Any:
        # `shadow: null` is no shadow and `readiness: null` is the default readiness, as in the API server.
        return without_nulls(data)

    def wire(self) -> dict[str, Any]:
        """The object as it appears in Kubernetes: camelCase keys, unset optional fields left out."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class SpecModel(Model):
    """Base of the models a person writes: values must have their declared JSON type, as admission requires.

    Strict mode refuses what admission refuses and pydantic's lax mode would convert: "4" for an integer,
    "true" or 1 for a boolean, true for a number (an integer is still a number). It also refuses 4.0 for an
    integer, which the API server takes where no CEL rule reads the field and refuses where one does.
    """

    model_config = ConfigDict(strict=True)


@dataclass(frozen=True)
class Rule:
    """One invariant, enforced by the API server (CEL) and by the pydantic model (predicate)."""

    cel: str
    message: str
    check: Callable[[Any], bool]
    field_path: str | None = None  # where the API server reports it, relative to the object it is declared on

    def schema(self) -> dict[str, str]:
        out = {"rule": self.cel, "message": self.message}
        if self.field_path:
            out["fieldPath"] = self.field_path
        return out


def rules_schema(*rules: Rule) -> dict[str, Any]:
    return {"x-kubernetes-validations": [r.schema() for r in rules]}


def enforce(obj: Any, *rules: Rule) -> None:
    """Raises ValueError with the rule's message (and field path) for the first rule the object breaks."""
    for rule in rules:
        if not rule.check(obj):
            where = f"{rule.field_path.lstrip('.')}: " if rule.field_path else ""
            raise ValueError(f"{where}{rule.message}")


def redact_url(url: str) -> str:
    """`url` fit for logs, Events and status: no userinfo, query values hidden, no fragment."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(a URL that does not parse)"
    host = parts.netloc.rpartition("@")[2]
    query = "&".join(f"{key}=redacted" for key, _ in parse_qsl(parts.query, keep_blank_values=True))
    return urlunsplit((parts.scheme, host, parts.path, query, ""))
