"""Blue-green: a full second fleet model-ready before the switch, one switch of every slice, a judged bake.

Preview: the candidate runs at `replicas` beside stable; only preview and QA requests reach it. The switch
waits for every replica to be model-ready (not `minReadyReplicas`), for `preview.duration`, and with
`promotion: manual` for a person's `promote`. Baking: every slice on the candidate, stable still fully
scaled; guards judge every slice, relative ones against stable's window before the switch. A failure
switches back in one write (`rollback`); a passed bake promotes, and the old fleet stays warm for
keepPreviousWarm.
"""

from __future__ import annotations

from modelrollout.api.common import seconds
from modelrollout.plan.conditions import AWAITING_PROMOTION
from modelrollout.plan.judging import all_passed_for, judge
from modelrollout.plan.phases import check_load_timeout
from modelrollout.plan.tick import Tick
from modelrollout.plan.transitions import promote_now, switch


def preview(t: Tick) -> None:
    """Switches every slice once all replicas are model-ready and the preview (and approval) is over."""
    s, spec = t.status, t.spec
    blue_green = spec.strategy.blue_green
    if blue_green is None:  # the spec changed strategy mid-rollout: deliver as the spec now says
        return
    ready = t.ready(s.candidate_version)
    if ready < spec.replicas:
        s.message = (
            f"{s.candidate_version} has {ready} of {spec.replicas} replicas model-ready: the switch waits "
            "for all of them"
        )
        check_load_timeout(t, ready, spec.replicas)
        return
    since = s.step_since or s.phase_since or t.now
    duration = seconds(blue_green.preview.duration) if blue_green.preview else 0.0
    if (t.now - since).total_seconds() < duration:
        s.message = (
            f"all {spec.replicas} replicas of {s.candidate_version} are model-ready; previewing for "
            f"{blue_green.preview.duration if blue_green.preview else '0s'} before the switch"
        )
        return
    if spec.strategy.promotion.mode == "manual":
        waiting = (
            f"all {spec.replicas} replicas of {s.candidate_version} are model-ready; waiting for "
            f"`kubectl modelrollout promote` to switch every slice to it"
        )
        if s.message != waiting:
            t.transition("Preview", AWAITING_PROMOTION, waiting)
        return
    switch(t, "Switched", f"all {spec.replicas} replicas of {s.candidate_version} are model-ready")


def baking(t: Tick) -> None:
    """Judges every slice after the switch; once all have passed for the bake, the candidate is stable."""
    blue_green = t.spec.strategy.blue_green
    if judge(t) or blue_green is None:
        return
    if all_passed_for(t, seconds(blue_green.bake)):
        promote_now(t, "BakePassed")
