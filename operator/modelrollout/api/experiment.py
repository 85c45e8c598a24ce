"""The A/B experiment: sticky assignment Istio can route, and a pre-registered analysis of one ratio metric.

Assignment rule (no state in the operator): the last two characters of the sticky key (a request header or
a cookie), read as a hex number 00..ff (either case), are the user's bucket; buckets below
round(candidatePercent x 256 / 100) get the candidate, every other user (and a key that does not end in
two hex digits) gets stable. The rule is a header regex Istio matches per request (`assignment_regex`),
so the same user always lands in the same arm. For uniformly distributed hex ids (UUIDs, hashes) the split
is exact in expectation up to the 1/256 rounding: at most 0.2 percentage points from the asked share.
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Literal

from pydantic import ConfigDict, Field, model_validator

from modelrollout.api.common import DnsLabel, Duration, Rule, SpecModel, enforce, rules_schema
from modelrollout.api.matching import HEADER_PATTERN

BUCKETS = 256
"""Two hex characters: the bucket space of the assignment rule."""
_COOKIE_PATTERN = r"^[A-Za-z0-9_.-]+$"
_METRIC_PATTERN = r"^[a-zA-Z_:][a-zA-Z0-9_:]*$"

_ONE_KEY = Rule(
    cel="has(self.header) != has(self.cookie)",
    message="set exactly one sticky key: header or cookie",
    check=lambda a: (a.header is None) != (a.cookie is None),
)


class Assignment(SpecModel):
    """Which user sees which arm: a key every request of a user carries, ending in two hex characters."""

    model_config = ConfigDict(json_schema_extra=rules_schema(_ONE_KEY))

    header: str | None = Field(default=None, min_length=1, max_length=128, pattern=HEADER_PATTERN)
    """Request header holding the user's id (lowercase name), e.g. x-user-id."""
    cookie: str | None = Field(default=None, min_length=1, max_length=128, pattern=_COOKIE_PATTERN)
    """Cookie holding the user's id (instead of a header)."""
    candidate_percent: float = Field(default=50.0, gt=0, lt=100)
    """Share of users assigned to the candidate, in percent (default 50; resolution 1/256)."""

    @model_validator(mode="after")
    def _rules(self) -> Assignment:
        enforce(self, _ONE_KEY)
        return self

    def candidate_buckets(self) -> int:
        """How many of the 256 buckets get the candidate (at least 1, at most 255)."""
        return min(BUCKETS - 1, max(1, round(self.candidate_percent * BUCKETS / 100)))

    def actual_percent(self) -> float:
        """The candidate's share of uniformly distributed ids the rule gives."""
        return 100.0 * self.candidate_buckets() / BUCKETS

    def match_header(self) -> str:
        """The request header the route matches on ('cookie' for a cookie key)."""
        return self.header if self.header is not None else "cookie"

    def regex(self) -> str:
        """The RE2 regex (full match) a request's key must match to reach the candidate."""
        suffix = assignment_suffix(self.candidate_buckets())
        if self.header is not None:
            return f".*{suffix}"
        name = (self.cookie or "").replace(".", r"\.")
        return f"(.*;\\s*)?{name}=[^;]*{suffix}(;.*)?"


def _hex_class(count: int) -> str:
    """A character class of the first `count` hex digits (1..16), either case."""
    digits = "0123456789abcdef"[:count]
    ranges = [f"0-{digits[min(count, 10) - 1]}"]
    if count > 10:
        ranges.append(f"a-{digits[-1]}A-{digits[-1].upper()}")
    return "[" + "".join(ranges) + "]"


def assignment_suffix(buckets: int) -> str:
    """A regex for two trailing hex characters whose value is below `buckets` (1..255)."""
    high, low = divmod(buckets, 16)
    parts = []
    if high:
        parts.append(f"{_hex_class(high)}[0-9a-fA-F]")
    if low:
        high_char = "0123456789abcdef"[high]
        chars = high_char if not high_char.isalpha() else f"[{high_char}{high_char.upper()}]"
        parts.append(f"{chars}{_hex_class(low)}")
    return "(" + "|".join(parts) + ")"


def bucket_of(key: str) -> int | None:
    """The bucket of an id by the rule (None when it does not end in two hex characters)."""
    try:
        return int(key[-2:], 16) if len(key) >= 2 and key[-2:].isalnum() else None
    except ValueError:
        return None


class ExperimentMetric(SpecModel):
    """The primary metric: a ratio of two counters per arm and slice (e.g. conversions over impressions)."""

    name: DnsLabel = "conversion"
    """Its name in the status and the report (default conversion)."""
    successes: str = Field(min_length=1, max_length=200, pattern=_METRIC_PATTERN)
    """Counter of the numerator, labelled by namespace, model, version and slice, e.g. model_conversions_total."""
    trials: str = Field(default="model_requests_total", min_length=1, max_length=200, pattern=_METRIC_PATTERN)
    """Counter of the denominator (default model_requests_total)."""


class ExperimentStrategy(SpecModel):
    """An A/B experiment: two arms for the whole run, one pre-registered metric, guardrails as in a canary."""

    assignment: Assignment
    """Sticky assignment of users to arms."""
    metric: ExperimentMetric
    """The primary metric."""
    minimum_detectable_effect: float = Field(gt=0, le=10)
    """Smallest relative change of the metric worth detecting, e.g. 0.1 for 10%."""
    baseline_rate: float | None = Field(default=None, gt=0, lt=1)
    """Expected rate of stable, for the sample size before data arrives (default: stable's observed rate)."""
    alpha: float = Field(default=0.05, gt=0, lt=0.5)
    """False-positive budget of the whole experiment (default 0.05)."""
    power: float = Field(default=0.8, gt=0.5, lt=1)
    """Chance to detect the minimum effect within the planned sample (default 0.8)."""
    max_duration: Duration = "24h"
    """Longest the experiment runs; no significant difference by then is 'no difference' (default 24h)."""
    max_trials_per_arm: int | None = Field(default=None, ge=1)
    """Sample cap per arm; no significant difference at the cap is 'no difference' (default: twice the
    fixed-horizon sample size, which keeps the anytime-valid test's power near `power`)."""
    expected_trials_per_hour: float | None = Field(default=None, gt=0)
    """Trials per hour the candidate's arm is expected to see (all slices), for `lint` to check that the sample
    can be reached within maxDuration (omit: not checked)."""
    on_no_difference: Literal["keepStable", "promote"] = "keepStable"
    """keepStable: the candidate is removed; promote: ship unless worse (default keepStable)."""
    decide_on: Literal["everySlice", "overall"] = "everySlice"
    """everySlice: a candidate better overall but significantly worse on a slice is rolled back; overall:
    it is promoted with a warning naming the slice (default everySlice)."""

    def planned_trials(self, baseline: float | None) -> int | None:
        """Trials per arm of a fixed-horizon test at this alpha, power and effect (None without a baseline)."""
        rate = self.baseline_rate or baseline
        if rate is None or not 0 < rate < 1:
            return None
        return required_trials(rate, self.minimum_detectable_effect, self.alpha, self.power)


def required_trials(baseline: float, relative_effect: float, alpha: float, power: float) -> int:
    """Trials per arm a fixed-horizon two-sided z-test needs to detect `relative_effect` on `baseline` with
    `power` at `alpha` (the usual planning figure; the anytime-valid test needs more, see `cap_of`)."""
    if not 0 < baseline < 1 or relative_effect == 0:
        return 0
    treated = min(max(baseline * (1 + relative_effect), 1e-9), 1 - 1e-9)
    z = NormalDist().inv_cdf(1 - alpha / 2) + NormalDist().inv_cdf(power)
    spread = baseline * (1 - baseline) + treated * (1 - treated)
    return math.ceil(z * z * spread / (treated - baseline) ** 2)


def cap_of(planned: int | None, spec_cap: int | None) -> int | None:
    """The sample cap per arm: the spec's, else twice the planned size."""
    if spec_cap is not None:
        return spec_cap
    return None if planned is None else 2 * planned
