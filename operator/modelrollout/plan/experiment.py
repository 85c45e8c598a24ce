"""A/B experiment: guardrails every interval as in a canary, and the pre-registered verdict on the metric.

Outcomes: candidate significantly worse overall -> rolled back (ExperimentWorse); better overall -> promoted
(ExperimentBetter); with `decideOn: everySlice` a slice pointing the other way holds the promotion until it
is significantly worse at alpha/slices or the experiment ends, then rolls back (ExperimentWorseOnSlice); no significant difference when both arms reach the sample cap or at
`maxDuration` -> stable kept (NoDifference, rolled back) or, with `onNoDifference: promote`, promoted
(ShipUnlessWorse). Every outcome's message names the effect with its interval, overall and per slice, and
the Simpson's-paradox warning when slices disagree in direction.
"""

from __future__ import annotations

from modelrollout.analysis.experiment import Summary, disagreeing, summarize
from modelrollout.api.common import seconds
from modelrollout.api.status import ArmEffect
from modelrollout.plan.judging import judge
from modelrollout.plan.tick import Tick
from modelrollout.plan.transitions import rollback


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.1%}"


def describe(effect: ArmEffect) -> str:
    """e.g. 'overall +10.2% [+4.1%, +16.3%] (12000 vs 11950 trials)'."""
    return (
        f"{effect.slice} {_pct(effect.effect)} [{_pct(effect.low)}, {_pct(effect.high)}] "
        f"({effect.candidate_trials} vs {effect.stable_trials} trials)"
    )


def _evidence(summary: Summary) -> str:
    status = summary.status
    parts = [describe(status.overall)] if status.overall else []
    parts += [describe(e) for e in status.slices]
    text = "; ".join(parts)
    return f"{text}. Warning: {status.warning}" if status.warning else text


def _promote(t: Tick, outcome: str, why: str) -> None:
    s = t.status
    if s.experiment is not None:
        s.experiment.outcome = outcome
    t.transition("Promoting", outcome, f"{why}; promoting {s.candidate_version}")


def _reject(t: Tick, outcome: str, why: str) -> None:
    if t.status.experiment is not None:
        t.status.experiment.outcome = outcome
    rollback(t, outcome, why)


def experiment(t: Tick) -> None:
    """Guardrails first (a failure rolls back at once); then the metric's verdict, when there is one."""
    s, spec = t.status, t.spec
    strategy = spec.strategy.experiment
    if judge(t) or strategy is None:
        return
    counts = t.obs.experiment
    if isinstance(counts, str):
        s.message = f"experiment metric unavailable: {counts}; no verdict until it is read"
        return
    if counts is None:
        return
    summary = summarize(spec, counts)
    s.experiment = summary.status
    evidence = _evidence(summary)
    metric = strategy.metric.name
    worse = [name for name, c in summary.slices.items() if c.direction == "worse"]
    against = _against(summary)
    ended = summary.capped or _timed_out(t, seconds(strategy.max_duration))
    limit = "the sample cap" if summary.capped else f"maxDuration {strategy.max_duration}"
    if summary.overall.direction == "worse":
        _reject(t, "ExperimentWorse", f"{metric} is significantly worse: {evidence}")
    elif summary.overall.direction == "better" and strategy.decide_on == "everySlice" and (worse or against):
        if worse or ended:
            named = ", ".join(worse or against)
            how = "significantly worse" if worse else f"pointing the other way at {limit}"
            _reject(
                t,
                "ExperimentWorseOnSlice",
                f"{metric} is better overall but {how} on slice {named} (decideOn: everySlice): {evidence}",
            )
        else:
            s.message = (
                f"{metric} is better overall, but slice {', '.join(against)} points the other way: waiting "
                f"for it to settle (decideOn: everySlice): {evidence}"
            )
    elif summary.overall.direction == "better":
        _promote(t, "ExperimentBetter", f"{metric} is significantly better: {evidence}")
    elif ended:
        why = f"no significant difference in {metric} at {limit}: {evidence}"
        if strategy.on_no_difference == "promote":
            _promote(t, "ShipUnlessWorse", why)
        else:
            _reject(t, "NoDifference", f"{why}; keeping {s.stable_version}")
    else:
        s.message = f"experiment running ({summary.status.progress:.0%} of the sample cap): {evidence}"


def _against(summary: Summary) -> list[str]:
    return disagreeing(summary.overall, summary.slices)


def _timed_out(t: Tick, budget: float) -> bool:
    since = t.status.step_since or t.status.phase_since
    return since is not None and (t.now - since).total_seconds() >= budget
