"""Which slice a request belongs to, decided exactly as the operator's Istio routes decide it.

Slices come from the ModelRollout (`spec.slices`, handed to every generated pod as JSON in the environment
variable MODELROLLOUT_SLICES). The first slice whose header matches all hold wins; anything else is the
implicit slice `default`. Using the same definitions as the routes keeps the metric `slice` label equal to
the route a request took.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import TypeAdapter, ValidationError

from modelrollout.api.spec import Slice
from modelrollout.identity import DEFAULT_SLICE, EXCLUDED_SLICES
from modelrollout.identity import SLICE_HEADER as ROUTED_SLICE_HEADER

SLICES_ENV = "MODELROLLOUT_SLICES"
_SLICE_LIST: TypeAdapter[list[Slice]] = TypeAdapter(list[Slice])


class SliceConfigError(ValueError):
    """The slice definitions are not valid JSON of ModelRollout slices; the message names the field."""


@functools.lru_cache(maxsize=512)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def value_matches(match: Mapping[str, Any], value: str | None) -> bool:
    """Istio's StringMatch on one header value: exact, prefix or regex (a full match, as RE2 in Envoy).

    An empty match only asks for the header to be present, as in an Istio HTTPMatchRequest.
    """
    if value is None:
        return False
    if "exact" in match:
        return value == str(match["exact"])
    if "prefix" in match:
        return value.startswith(str(match["prefix"]))
    if "regex" in match:
        return _compiled(str(match["regex"])).fullmatch(value) is not None
    return True


def lowercase_headers(headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> dict[str, str]:
    """Header names lowercased (HTTP names are case-insensitive); the first of repeated headers is kept."""
    items = headers.items() if isinstance(headers, Mapping) else headers
    out: dict[str, str] = {}
    for name, value in items:
        out.setdefault(name.lower(), value)
    return out


def parse_slices(text: str | None) -> list[Slice]:
    """Parses the JSON list of ModelRollout slices (empty or missing: no slices, everything is `default`)."""
    if text is None or not text.strip():
        return []
    try:
        slices = _SLICE_LIST.validate_json(text)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "(top level)"
        raise SliceConfigError(
            f"{SLICES_ENV}: {where}: {first['msg'].removeprefix('Value error, ')}"
        ) from None
    names = [s.name for s in slices]
    if len(names) != len(set(names)):
        raise SliceConfigError(f"{SLICES_ENV}: slice names must be unique, got {names}")
    return slices


class SliceClassifier:
    """Assigns a request to the first slice whose header matches all hold, else to `default`."""

    def __init__(self, slices: Sequence[Slice] = ()) -> None:
        self.slices = list(slices)
        self._rules = [
            (s.name, [(header, m.wire()) for header, m in s.match.headers.items()]) for s in self.slices
        ]

    @classmethod
    def from_json(cls, text: str | None) -> SliceClassifier:
        return cls(parse_slices(text))

    @property
    def names(self) -> list[str]:
        """Every slice in match order, ending with `default`."""
        return [name for name, _ in self._rules] + [DEFAULT_SLICE]

    def classify(self, headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> str:
        lowered = lowercase_headers(headers)
        # The operator's routes set this header once they have matched the request: trust the mesh's decision.
        routed = lowered.get(ROUTED_SLICE_HEADER)
        # Known slices, and the labels of requests routed past analysis (QA override, preview): nothing else,
        # so a stray header cannot create series of its own.
        if routed is not None and (routed in self.names or routed in EXCLUDED_SLICES):
            return routed
        for name, rules in self._rules:
            if all(value_matches(match, lowered.get(header)) for header, match in rules):
                return name
        return DEFAULT_SLICE
