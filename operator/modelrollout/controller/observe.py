"""Reading the world for one tick: Deployments, gates, Prometheus (when due), commands, the candidate's fingerprint."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from modelrollout.analysis.experiment import Counts
from modelrollout.analysis.results import AnalysisResult
from modelrollout.analysis.run import analyze, experiment_counts
from modelrollout.api import commands
from modelrollout.api.spec import ModelRolloutSpec
from modelrollout.api.status import Fingerprint, ModelRolloutStatus
from modelrollout.controller.apply import read_routes_object
from modelrollout.controller.outbound import gate_context
from modelrollout.controller.reference import RolloutRef
from modelrollout.controller.runtime import Runtime
from modelrollout.errors import InvalidTemplate
from modelrollout.identity import VERSION_LABEL
from modelrollout.plan import Commands, Observations, WorkloadState, analysis_request, needs
from modelrollout.traffic import ownership
from modelrollout.traffic.istio import shadowing
from modelrollout.traffic.provider import route_object
from modelrollout.workloads.render import fingerprint


@dataclass(frozen=True)
class Observed:
    """This tick's observations, and the live Deployments they were read from (by model version)."""

    observations: Observations
    deployments: dict[str, dict[str, Any]]
    routes_object: dict[str, Any] | None
    """The VirtualService or HTTPRoute as read this tick (the route write starts from it)."""


def owned_deployments(deployments: list[dict[str, Any]], uid: str) -> dict[str, dict[str, Any]]:
    """Our Deployments by model version; one carrying another rollout's owner reference is not ours."""
    found: dict[str, dict[str, Any]] = {}
    for item in deployments:
        meta = item.get("metadata", {})
        owners = meta.get("ownerReferences") or []
        if not any(o.get("uid") == uid for o in owners):
            continue
        version = (meta.get("labels") or {}).get(VERSION_LABEL)
        if version:
            found[version] = item
    return found


def workload_state(item: dict[str, Any], version: str) -> WorkloadState:
    spec, status = item.get("spec") or {}, item.get("status") or {}
    return WorkloadState(
        version=version,
        replicas=int(spec.get("replicas") or 0),
        ready_replicas=int(status.get("readyReplicas") or 0),
    )


def read_commands(annotations: Mapping[str, str]) -> Commands:
    promote, full = commands.promote_id(annotations)
    return Commands(
        paused=commands.is_paused(annotations),
        promote=promote,
        promote_full=full,
        abort=commands.abort_id(annotations),
        retry=commands.retry_id(annotations),
    )


def candidate_fingerprint(spec: ModelRolloutSpec) -> Fingerprint | str:
    """The fingerprint of the version the spec asks for, or why its template cannot make a pod."""
    try:
        return fingerprint(spec, spec.model.version, spec.model.uri)
    except InvalidTemplate as error:
        return str(error)


async def _analysis(
    rt: Runtime, ref: RolloutRef, spec: ModelRolloutSpec, status: ModelRolloutStatus, now: datetime
) -> AnalysisResult | None:
    request = analysis_request(status, now)
    if request is None or not status.stable_version or not status.candidate_version:
        return None
    begun = time.monotonic()
    result = await analyze(
        rt.prometheus.for_source(spec.analysis.prometheus),
        spec,
        ref.namespace,
        request.phase,
        status.stable_version,
        status.candidate_version,
        request.since,
        now,
        rt.batcher,
        baseline_at=request.baseline_at,
    )
    rt.metrics.observe_analysis(ref.namespace, ref.name, result, time.monotonic() - begun)
    return result


async def _experiment(
    rt: Runtime, ref: RolloutRef, spec: ModelRolloutSpec, status: ModelRolloutStatus, now: datetime
) -> Counts | str | None:
    """The A/B metric's counters since the experiment began (only in the Experiment phase)."""
    phase = status.paused_phase if status.phase == "Paused" else status.phase
    if phase != "Experiment" or spec.strategy.experiment is None:
        return None
    if not status.stable_version or not status.candidate_version:
        return None
    return await experiment_counts(
        rt.prometheus.for_source(spec.analysis.prometheus),
        spec,
        ref.namespace,
        status.stable_version,
        status.candidate_version,
        status.step_since or status.phase_since or now,
        now,
    )


async def observe(
    rt: Runtime, ref: RolloutRef, spec: ModelRolloutSpec, status: ModelRolloutStatus, now: datetime
) -> Observed:
    """Everything `plan` needs this tick; gates and Prometheus only when `needs` says so."""
    need = needs(spec, status, now)
    deployments = owned_deployments(await rt.kube.list_deployments(ref.namespace, ref.name), ref.uid)
    live = await read_routes_object(rt.kube, spec, ref.namespace)
    refused = ownership.refusal(live, spec, rollout=ref.name, namespace=ref.namespace)
    gates = await rt.outbound.ask_gates(spec, gate_context(ref, spec, status)) if need.gates else None
    analysis = await _analysis(rt, ref, spec, status, now) if need.analysis else None
    experiment = await _experiment(rt, ref, spec, status, now) if need.analysis else None
    observations = Observations(
        now=now,
        generation=ref.generation,
        workloads={version: workload_state(item, version) for version, item in deployments.items()},
        analysis=analysis,
        experiment=experiment,
        gates=gates,
        commands=read_commands(ref.annotations),
        candidate_fingerprint=candidate_fingerprint(spec),
        routes_refused=str(refused) if refused is not None else None,
        # Istio takes the first matching route; Gateway API ranks matches by specificity instead.
        shadowed_routes=shadowing(route_object(spec).routes(live))
        if live is not None and spec.traffic.istio is not None
        else None,
    )
    return Observed(observations, deployments, live)
