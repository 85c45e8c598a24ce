"""Header matches, shared by slices, the preview and QA override routes and the experiment's assignment."""

from __future__ import annotations

import re2  # type: ignore[import-untyped]
from pydantic import ConfigDict, Field, model_validator

from modelrollout.api.common import Rule, SpecModel, enforce, rules_schema

HEADER_PATTERN = r"^[a-z0-9]([-a-z0-9_]*[a-z0-9])?$"
"""A header name as Istio compares it: lowercase letters, digits, '-' and '_'."""
HEADER_NAME_MESSAGE = "header names must be lowercase (letters, digits, '-' and '_'), as Istio compares them"

_ONE_MATCH = Rule(
    cel="(has(self.exact) ? 1 : 0) + (has(self.prefix) ? 1 : 0) + (has(self.regex) ? 1 : 0) == 1",
    message="exactly one of exact, prefix or regex must be set",
    check=lambda m: sum(v is not None for v in (m.exact, m.prefix, m.regex)) == 1,
)


# `matches` compiles its argument: an invalid pattern makes both sides an error, which fails the rule. The API
# server compiles with Go's regexp (RE2 syntax); the models with RE2 itself, the library Envoy uses.
_VALID_RE2 = Rule(
    cel="''.matches(self) || !''.matches(self)",
    message="must be a valid RE2 regular expression (Istio's proxies match headers with RE2)",
    check=lambda regex: re2_error(regex) is None,
)


_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # the refusal is reported where the field is named, not on stderr


def re2_error(regex: str) -> str | None:
    """Why RE2 refuses `regex`, or None when it compiles."""
    try:
        re2.compile(regex, _RE2_OPTIONS)
    except re2.error as error:
        detail = error.args[0] if error.args else error
        return detail.decode(errors="replace") if isinstance(detail, bytes) else str(detail)
    return None


class StringMatch(SpecModel):
    """A header value match: exactly one of exact, prefix or regex."""

    model_config = ConfigDict(json_schema_extra=rules_schema(_ONE_MATCH))

    exact: str | None = Field(default=None, max_length=256)
    """Matches the whole value."""
    prefix: str | None = Field(default=None, max_length=256)
    """Matches a value starting with this."""
    regex: str | None = Field(
        default=None,
        min_length=1,
        max_length=256,
        json_schema_extra=dict(rules_schema(_VALID_RE2)),
    )
    """Matches an RE2 regular expression (the engine of Istio's proxies; Perl lookarounds and backreferences are not RE2)."""

    @model_validator(mode="after")
    def _rules(self) -> StringMatch:
        enforce(self, _ONE_MATCH)
        return self


def _true() -> StringMatch:
    return StringMatch(exact="true")


class HeaderRoute(SpecModel):
    """Requests carrying a header the user names: they reach the candidate and are left out of analysis."""

    header: str = Field(min_length=1, max_length=128, pattern=HEADER_PATTERN)
    """Header name (lowercase), e.g. x-canary-override."""
    value: StringMatch = Field(default_factory=_true)
    """Its value (default: exact "true")."""
