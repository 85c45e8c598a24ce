"""The desired world after a tick: which versions run (and at what size) and the whole routing state."""

from __future__ import annotations

from modelrollout.api.status import CARRIES_CANDIDATE, IN_FLIGHT, SERVING
from modelrollout.plan.actions import EnsureWorkload, RemoveWorkload, SetRoutes
from modelrollout.plan.tick import Tick


def desired_workloads(t: Tick) -> None:
    """Stable always; the candidate while in flight (or kept after a rollback); the previous while warm."""
    s, spec = t.status, t.spec
    keep: set[str] = set()
    if s.stable_version is not None:
        keep.add(s.stable_version)
        uri = s.stable.uri if s.stable else spec.model.uri
        t.actions.append(EnsureWorkload(s.stable_version, uri, spec.replicas, render=False))
    candidate = s.candidate_version
    if candidate is not None and s.phase in IN_FLIGHT and s.phase != "Pending":
        keep.add(candidate)
        t.actions.append(EnsureWorkload(candidate, spec.model.uri, spec.replicas, render=True))
    elif (
        candidate is not None and s.candidate_scale_down_at is not None and t.now < s.candidate_scale_down_at
    ):
        keep.add(candidate)  # kept as it is for inspection after a rollback
    if s.previous_version is not None and s.previous_warm_until is not None and t.now < s.previous_warm_until:
        keep.add(s.previous_version)
    for version in sorted(t.obs.workloads):
        if version not in keep:
            t.actions.append(RemoveWorkload(version))


def desired_routes(t: Tick) -> None:
    """The routes of every slice in one SetRoutes; nothing routes before a stable version is model-ready."""
    s, strategy = t.status, t.spec.strategy
    if s.stable_version is None:
        return
    routed_phase = s.paused_phase if s.phase == "Paused" else s.phase
    # Only a model-ready candidate is ever named by a route (mirror, preview, QA or weight).
    carries_candidate = (
        routed_phase in CARRIES_CANDIDATE and s.candidate_version is not None and t.capped(100) > 0
    )
    # The last word on weights: whatever the phase (promoting, paused), never more than the
    # candidate's model-ready replicas can carry right now.
    s.canary_weight = t.capped(s.canary_weight)
    weight = s.canary_weight if carries_candidate and routed_phase in SERVING else 0
    mirror = s.mirror_percent if carries_candidate and s.mirror_percent > 0 else None
    for item in s.slices:
        item.canary_weight = weight
    preview = strategy.blue_green.preview if strategy.blue_green else None
    t.actions.append(
        SetRoutes(
            stable=s.stable_version,
            candidate=s.candidate_version if carries_candidate else None,
            weights=dict.fromkeys(t.spec.slice_names(), weight),
            mirror_percent=mirror,
            qa=carries_candidate and strategy.qa_override is not None,
            preview=carries_candidate and routed_phase == "Preview" and preview is not None,
            experiment=carries_candidate and routed_phase == "Experiment",
        )
    )
