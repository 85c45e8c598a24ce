"""Drives the real planner over random observations: readiness, Prometheus answers, gates, commands, time.

Prometheus answers are random samples (any slice or version label, NaN and infinities, histogram buckets,
error and mean halves) or typed query errors, decoded and judged by the real analysis code, so a tick runs
everything from query planning to the new status. Used by the property tests that feed specs the API server
admitted: whatever the spec, no tick may raise, and the status must always read back and fit its bounds.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import timedelta
from typing import Any, Literal

from hypothesis import strategies as st

from modelrollout.analysis.queries import plan_queries
from modelrollout.analysis.results import (
    BadData,
    QueryOutcome,
    QueryTimeout,
    Sample,
    Unavailable,
)
from modelrollout.analysis.verdicts import judge
from modelrollout.api.spec import ModelRolloutSpec
from modelrollout.api.status import ModelRolloutStatus
from modelrollout.errors import InvalidTemplate
from modelrollout.plan import Commands, GateResult, Observations, WorkloadState, judged_phase, needs, plan
from modelrollout.workloads.render import fingerprint
from tests.support.world import T0

VALUES = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(0, 1e6),
    st.sampled_from([0.0, 1.0, math.nan, math.inf, -math.inf]),
)
LE = st.sampled_from(["0.005", "0.1", "1", "2.5", "+Inf", "NaN", "x"])


def _samples(draw: Callable[..., Any], slices: list[str], versions: list[str]) -> list[Sample]:
    out = []
    for _ in range(draw(st.integers(0, 12))):
        labels = {
            "slice": draw(st.sampled_from([*slices, "unknown"])),
            draw(st.sampled_from(["version", "destination_version"])): draw(
                st.sampled_from([*versions, "vX"])
            ),
        }
        if draw(st.booleans()):
            labels[draw(st.sampled_from(["code", "response_code"]))] = draw(
                st.sampled_from(["200", "503", "x"])
            )
        if draw(st.booleans()):
            labels["le"] = draw(LE)
        if draw(st.booleans()):
            labels["stat"] = draw(st.sampled_from(["sum", "count", "other"]))
        out.append(Sample(labels=labels, value=draw(VALUES)))
    return out


def _outcome(draw: Callable[..., Any], slices: list[str], versions: list[str]) -> QueryOutcome:
    kind = draw(st.sampled_from(["samples", "samples", "samples", "bad", "timeout", "down"]))
    if kind == "bad":
        return BadData("HTTP 400: bad_data: parse error")
    if kind == "timeout":
        return QueryTimeout("no answer in time")
    if kind == "down":
        return Unavailable("connection refused")
    return _samples(draw, slices, versions)


def observe(
    draw: Callable[..., Any], spec: ModelRolloutSpec, status: ModelRolloutStatus, now: Any
) -> Observations:
    """One tick's observations, random where the world is random, real where the operator computes them."""
    need = needs(spec, status, now)
    versions = [v for v in (status.stable_version, status.candidate_version, status.previous_version) if v]
    workloads = {}
    for version in versions:
        if draw(st.integers(0, 9)) > 0:
            replicas = spec.replicas
            ready = draw(st.sampled_from([replicas, replicas, 0, draw(st.integers(0, replicas))]))
            workloads[version] = WorkloadState(version=version, replicas=replicas, ready_replicas=ready)
    analysis = None
    phase = judged_phase(status)
    if need.analysis and phase is not None and status.stable_version and status.candidate_version:
        judged: Literal["shadow", "canary"] = "shadow" if phase == "shadow" else "canary"
        since = status.step_since or status.phase_since or now
        queries = plan_queries(
            spec, "ns", judged, status.stable_version, status.candidate_version, since, now
        ).queries
        slices = spec.slice_names()
        outcomes = {key: _outcome(draw, slices, versions) for key in queries}
        analysis = judge(
            spec, judged, status.stable_version, status.candidate_version, outcomes, now, since=since
        )
    gates = None
    if need.gates:
        gates = [
            GateResult(gate.name, draw(st.booleans()), draw(st.text(max_size=40))) for gate in spec.gates
        ]
    commands = Commands(
        paused=draw(st.integers(0, 9)) == 0,
        promote=draw(st.sampled_from([None, None, None, "p1", "full:p2"])),
        promote_full=False,
        abort=draw(st.sampled_from([None] * 12 + ["a1"])),
        retry=draw(st.sampled_from([None] * 6 + ["r1"])),
    )
    commands = Commands(
        paused=commands.paused,
        promote=commands.promote,
        promote_full=bool(commands.promote and commands.promote.startswith("full:")),
        abort=commands.abort,
        retry=commands.retry,
    )
    try:
        printed: Any = fingerprint(spec, spec.model.version, spec.model.uri)
    except InvalidTemplate as error:
        printed = str(error)
    return Observations(
        now=now,
        generation=1,
        workloads=workloads,
        analysis=analysis,
        gates=gates,
        commands=commands,
        candidate_fingerprint=printed,
    )


def run(draw: Callable[..., Any], spec: ModelRolloutSpec, ticks: int) -> ModelRolloutStatus:
    """`ticks` planner ticks over random observations, with the version changed now and then; returns the
    last status. Raises whatever the planner raises: the caller's test is that nothing does."""
    status = ModelRolloutStatus()
    now = T0
    versions = [spec.model.version, "v-next", "v-other"]
    for _ in range(ticks):
        if draw(st.integers(0, 7)) == 0:
            data = spec.model_dump(by_alias=True, exclude_none=True)
            data["model"]["version"] = draw(st.sampled_from(versions))
            spec = ModelRolloutSpec.model_validate(data)
        result = plan(spec, status, observe(draw, spec, status, now))
        # What the controller writes is what the next tick reads back.
        status = ModelRolloutStatus.model_validate(result.status.wire())
        step = draw(st.sampled_from([0.0, 1.0, 5.0, 60.0, 3600.0, 86_400.0, 700_000.0]))
        now += timedelta(seconds=step)
    return status
