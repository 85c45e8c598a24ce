"""Folding one analysis tick's per-slice verdicts into status, and deciding whether a guard demands a rollback."""

from __future__ import annotations

from modelrollout.analysis.results import AnalysisResult, SliceVerdict
from modelrollout.api.common import seconds
from modelrollout.api.status import GuardVerdict, Samples, SliceStatus
from modelrollout.plan.tick import Tick
from modelrollout.plan.transitions import rollback


def _slice_status(
    t: Tick, name: str, verdict: SliceVerdict, before: SliceStatus | None
) -> tuple[SliceStatus, list[GuardVerdict]]:
    """One slice's new status, and the guard verdicts on it that demand a rollback.

    A guard's failures are counted over the whole stage: a Pass or an Inconclusive evaluation in between
    does not reset the count (a starved candidate, or one that alternates Fail and no data, keeps it).
    """
    rules = {g.name: g for g in t.spec.analysis.guards}
    earlier = {g.name: g for g in before.guards} if before else {}
    judged: list[GuardVerdict] = []
    triggered: list[GuardVerdict] = []
    for guard in verdict.guards:
        previous = earlier.pop(guard.name, None)
        failures = (previous.failures if previous else 0) + (1 if guard.verdict == "Fail" else 0)
        judged.append(guard.model_copy(update={"failures": failures}))
        rule = rules.get(guard.name)
        if (
            guard.verdict == "Fail"
            and rule is not None
            and (rule.immediate or failures >= rule.failure_limit)
        ):
            triggered.append(judged[-1])
    for name_, previous in earlier.items():  # not judged this time (no series at all): its count stays
        if name_ in rules and previous.failures:
            judged.append(
                previous.model_copy(
                    update={"verdict": "Inconclusive", "reason": "no verdict this evaluation"}
                )
            )
    since = None
    if verdict.verdict == "Pass":
        kept = before is not None and before.verdict == "Pass" and before.passing_since is not None
        since = before.passing_since if kept and before is not None else t.now
    item = SliceStatus(
        name=name,
        canary_weight=t.status.canary_weight,
        verdict=verdict.verdict,
        samples=verdict.samples,
        guards=judged,
        passing_since=since,
    )
    return item, triggered


def judge(t: Tick) -> bool:
    """Folds this tick's verdicts into status; rolls back and returns True when a guard demands it."""
    result = t.obs.analysis
    if result is None:
        return False
    s, spec = t.status, t.spec
    previous = {item.name: item for item in s.slices}
    slices: list[SliceStatus] = []
    triggered: list[tuple[str, GuardVerdict]] = []
    for name in spec.slice_names():
        verdict = result.slices.get(name) or SliceVerdict(
            name=name, verdict="Inconclusive", samples=Samples(), guards=[]
        )
        item, fired = _slice_status(t, name, verdict, previous.get(name))
        slices.append(item)
        triggered += [(name, g) for g in fired]
    s.slices = slices
    s.failing_slices = sum(1 for item in slices if item.verdict == "Fail")
    s.last_analysis = result.evaluated_at
    if triggered:
        # A judge's reason starts with the guard's name ("error-ratio 0.080 > 0.0116 (1.05 x stable 0.011)").
        named = "; ".join(f"slice {name}: {g.reason or g.name}" for name, g in triggered[:3])
        more = f" (and {len(triggered) - 3} more)" if len(triggered) > 3 else ""
        rollback(t, "GuardFailed", named + more, [g for _, g in triggered])
        return True
    return _inconclusive(t, slices) or _missing_data(t, result)


def _missing_data(t: Tick, result: AnalysisResult) -> bool:
    """The stage's missing-data deadline: no evaluation with every slice conclusive (and every query answered)
    for analysis.missingDataDeadline. Rolls back (returning True), or holds and says so once."""
    s, analysis = t.status, t.spec.analysis
    inconclusive = [item.name for item in s.slices if item.verdict == "Inconclusive"]
    if not inconclusive and not result.errors:
        s.conclusive_at, s.missing_data_overdue = t.now, False
        return False
    started = [x for x in (s.conclusive_at, s.step_since or s.phase_since) if x is not None]
    since = max(started) if started else t.now
    waited = (t.now - since).total_seconds()
    deadline = seconds(analysis.missing_data_deadline)
    if waited < deadline:
        return False
    why = result.errors[0] if result.errors else f"slices {', '.join(inconclusive)} inconclusive"
    message = (
        f"no conclusive data for {waited:.0f}s (missingDataDeadline {analysis.missing_data_deadline}): {why}"
    )
    if analysis.on_missing_data == "rollback":
        rollback(t, "MissingData", message)
        return True
    if not s.missing_data_overdue:
        s.missing_data_overdue = True
        t.warn("MissingData", f"{message}; traffic held as it is until the data is back")
    return False


def _inconclusive(t: Tick, slices: list[SliceStatus]) -> bool:
    """Counts the stage's evaluations with an Inconclusive slice; with onInconclusive: fail, too many roll
    back. Like failures, the count is per stage: conclusive evaluations in between do not reset it."""
    s, analysis = t.status, t.spec.analysis
    if not any(item.verdict == "Inconclusive" for item in slices):
        return False
    s.inconclusive_count += 1
    if analysis.on_inconclusive == "fail" and s.inconclusive_count >= analysis.max_inconclusive:
        unsure = ", ".join(item.name for item in slices if item.verdict == "Inconclusive")
        rollback(
            t,
            "Inconclusive",
            f"no conclusive verdict in {s.inconclusive_count} evaluations of this stage (slices {unsure})",
        )
        return True
    return False


def all_passed_for(t: Tick, duration: float) -> bool:
    """Every slice has passed without a break since the current stage began, for at least `duration` seconds."""
    s = t.status
    if len(s.slices) != len(t.spec.slice_names()):
        return False
    for item in s.slices:
        if item.verdict != "Pass" or item.passing_since is None:
            return False
        if s.step_since is not None and item.passing_since < s.step_since:
            return False
        if (t.now - item.passing_since).total_seconds() < duration:
            return False
    return True
