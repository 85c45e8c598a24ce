"""How a candidate reaches users: shadow, then a stratified canary, a blue-green switch or an A/B experiment.

Exactly one delivery strategy is set: `canary` (steps of growing weight, every slice alike), `blueGreen`
(a full second fleet, one switch of every slice, a bake) or `experiment` (two arms by a sticky key, one
pre-registered metric; `api/experiment.py`). `shadow` may precede either; `qaOverride` lets
testers reach the candidate in any phase of either.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field, model_validator

from modelrollout.api.common import Between, Duration, Rule, SpecModel, enforce, rules_schema
from modelrollout.api.experiment import ExperimentStrategy
from modelrollout.api.matching import HeaderRoute

MAX_STEPS = 20


class ShadowStrategy(SpecModel):
    """Mirror live traffic to the candidate before any user sees it."""

    mirror_percent: float = Field(default=100.0, gt=0, le=100)
    """Share of every slice's requests mirrored to the candidate, in percent (default 100)."""
    duration: Annotated[Duration, Between("0s", "168h")]
    """How long the candidate must pass on mirrored traffic before users see it (canary or blue-green)."""


class CanaryStep(SpecModel):
    """One canary step: every slice sends `weight` percent to the candidate for at least `pause`."""

    weight: int = Field(ge=1, le=100)
    """Candidate share of every slice, in percent."""
    pause: Annotated[Duration, Between("0s", "168h")] = "1m"
    """How long every slice must keep passing at this weight before the next step (default 1m)."""


_ASCENDING = Rule(
    cel="self.steps.map(s, s.weight).isSorted() && self.steps.all(s, self.steps.exists_one(t, t.weight == s.weight))",
    message="step weights must strictly ascend",
    check=lambda c: all(a.weight < b.weight for a, b in zip(c.steps, c.steps[1:], strict=False)),
    field_path=".steps",
)


class CanaryStrategy(SpecModel):
    """The stratified canary."""

    model_config = ConfigDict(json_schema_extra=rules_schema(_ASCENDING))

    steps: list[CanaryStep] = Field(min_length=1, max_length=MAX_STEPS)
    """Steps in order, with strictly ascending weights."""

    @model_validator(mode="after")
    def _rules(self) -> CanaryStrategy:
        enforce(self, _ASCENDING)
        return self


class Preview(HeaderRoute):
    """Before the switch, requests with this header reach the candidate; they are left out of analysis."""

    duration: Annotated[Duration, Between("0s", "168h")] = "0s"
    """How long the preview lasts at least, once every candidate replica is model-ready (default 0s)."""


class BlueGreenStrategy(SpecModel):
    """Two full fleets: the candidate scaled to `replicas` and model-ready, one switch of every slice, a bake."""

    preview: Preview | None = None
    """Preview route before the switch (omit for none)."""
    bake: Annotated[Duration, Between("0s", "168h")] = "5m"
    """How long every slice must pass after the switch, with stable still fully scaled, before the candidate
    becomes stable (default 5m). Relative guards compare with stable's window just before the switch."""


class Promotion(SpecModel):
    """What happens after the last step passes (canary) or before the switch (blue-green)."""

    mode: Literal["auto", "manual"] = "auto"
    """auto: go on at once; manual: wait for `kubectl modelrollout promote` after the last canary step, or
    before the blue-green switch (default auto)."""


_ONE_DELIVERY = Rule(
    cel="(has(self.canary) ? 1 : 0) + (has(self.blueGreen) ? 1 : 0) + (has(self.experiment) ? 1 : 0) == 1",
    message="set exactly one delivery strategy: canary, blueGreen or experiment",
    check=lambda s: sum(x is not None for x in (s.canary, s.blue_green, s.experiment)) == 1,
)


class Strategy(SpecModel):
    """Shadow, then a canary or a blue-green switch, and promotion."""

    model_config = ConfigDict(json_schema_extra=rules_schema(_ONE_DELIVERY))

    shadow: ShadowStrategy | None = None
    """Shadow phase (omit to skip it)."""
    canary: CanaryStrategy | None = None
    """Canary steps (one of canary, blueGreen or experiment)."""
    blue_green: BlueGreenStrategy | None = None
    """Blue-green switch (one of canary, blueGreen or experiment)."""
    experiment: ExperimentStrategy | None = None
    """A/B experiment (one of canary, blueGreen or experiment)."""
    promotion: Promotion = Field(default_factory=Promotion)
    """Promotion mode."""
    qa_override: HeaderRoute | None = None
    """Requests with this header reach the candidate in every phase where it serves or previews (it must be
    model-ready), and are left out of analysis (omit for none)."""

    @model_validator(mode="after")
    def _rules(self) -> Strategy:
        enforce(self, _ONE_DELIVERY)
        return self

    @property
    def name(self) -> Literal["canary", "blueGreen", "experiment"]:
        """The delivery strategy in use."""
        if self.canary is not None:
            return "canary"
        return "blueGreen" if self.blue_green is not None else "experiment"

    def steps(self) -> list[CanaryStep]:
        """The canary steps ([] for blue-green)."""
        return list(self.canary.steps) if self.canary is not None else []
