"""Every shipped scenario, end to end in the sandbox: real control plane, real Prometheus, the operator as a
process, simulated model servers and traffic that follows the live VirtualService. The healthy, error and
prediction-shift scenarios also run on the Gateway API provider, with traffic following the live HTTPRoute.

Each test checks the scenario's expected outcome, then what the scenario exists to show (and must never show),
from the recorded timeline, the traffic counters and the final object. Every run is also judged by other
projects' own code: every VirtualService version the operator wrote passes `istioctl validate` (an HTTPRoute
is validated by its CRD's schema and CEL rules in the API server), the namespace has no Error from
`istioctl analyze` at the end, and kstatus and Argo CD read every sampled state of the
rollout as the docs table says.
"""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from modelrollout.api.status import ModelRolloutStatus
from modelrollout.identity import API_VERSION, KIND
from modelrollout.sandbox.demo import DemoResult, DemoRunner, Sample
from tests.conftest import Cluster
from tests.support import istio
from tests.support.rollout_states import EXPECTED, state_of
from tests.support.verdicts import argocd_health_all, kstatus_all

pytestmark = pytest.mark.e2e
SCENARIOS = Path(__file__).resolve().parents[2] / "examples" / "scenarios"


PROVIDERS = pytest.mark.parametrize("provider", ["istio", "gatewayapi"])
# Per provider: the resource its routes live in, and the object the operator writes there.
ROUTE_OBJECTS = {
    "istio": ("virtualservices.networking.istio.io", "virtualservice.networking.istio.io/recommender"),
    "gatewayapi": ("httproutes.gateway.networking.k8s.io", "httproute.gateway.networking.k8s.io/recommender"),
}


def run(cluster: Cluster, name: str, tmp_path: Path, provider: str = "istio") -> DemoResult:
    namespace = f"e2e-{name}-{secrets.token_hex(2)}"
    runner = DemoRunner(
        SCENARIOS / f"{name}.yaml",
        sandbox=cluster.require_sandbox(),
        namespace=namespace,
        console=Console(file=(tmp_path / "console.log").open("w"), width=120),
        reports=tmp_path,
        live=False,
        provider=provider,
    )
    # Every version of the routes written, for Istio's own validation (which the sandbox has no webhook for).
    with istio.WriteRecorder(cluster.kubeconfig, namespace, ROUTE_OBJECTS[provider][0]) as recorder:
        result = asyncio.run(runner.run())
        written = recorder.stop()
    istio.assert_routes_valid(cluster.kubeconfig, namespace, written)
    assert result.ok, (
        f"{name}: {result.problems}; events {result.events}; message {result.status.get('message')}"
    )
    assert result.report is not None
    assert "<svg" in result.report.read_text()
    # The routes went through the provider's own kind, and only through it.
    for which, (resource, written) in ROUTE_OBJECTS.items():
        found = cluster.kubectl("get", resource, "-n", result.namespace, "-o", "name").stdout.split()
        assert found == ([written] if which == provider else []), (which, found)
    check_states_with_kstatus_and_argocd(result)
    return result


def live_object(result: DemoResult, sample: Sample) -> dict[str, Any]:
    metadata = {"name": "recommender", "namespace": result.namespace, "generation": sample.generation}
    return {"apiVersion": API_VERSION, "kind": KIND, "metadata": metadata, "status": sample.status}


def check_states_with_kstatus_and_argocd(result: DemoResult) -> None:
    """Every distinct state sampled during the run, read by kstatus and Argo CD's own code."""
    distinct: dict[str, dict[str, Any]] = {}
    for sample in result.timeline:
        obj = live_object(result, sample)
        conditions = [(c["type"], c["status"], c.get("reason")) for c in sample.status.get("conditions", [])]
        distinct.setdefault(repr((sample.generation, sample.status.get("phase"), conditions)), obj)
    objects = list(distinct.values())
    seen = [
        (state_of(obj), k.status, a.status)
        for obj, k, a in zip(objects, kstatus_all(objects), argocd_health_all(objects), strict=True)
    ]
    expected = [(state, EXPECTED[state].kstatus, EXPECTED[state].argocd) for state, _, _ in seen]
    assert seen == expected
    final = kstatus_all([live_object(result, result.timeline[-1])])[0].status
    assert final == {"Succeeded": "Current"}.get(str(result.status.get("phase")), "Failed")


def final_health(result: DemoResult) -> str:
    return argocd_health_all([live_object(result, result.timeline[-1])])[0].status


def reasons(result: DemoResult) -> list[str]:
    return [d["reason"] for d in result.status.get("history", [])]


@PROVIDERS
def test_healthy_rollout_succeeds_through_shadow_and_every_step(
    cluster: Cluster, tmp_path: Path, provider: str
) -> None:
    result = run(cluster, "healthy", tmp_path, provider)
    assert reasons(result)[-5:] == ["ShadowStarted", "ShadowPassed", "StepPassed", "StepPassed", "Promoted"]
    weights = {s.weight for s in result.timeline if s.phase == "Canary"}
    assert {25, 50} <= weights
    assert result.traffic.total(version="v2", kind="mirrored") > 0
    assert result.traffic.total(version="v2", kind="served") > 0
    assert final_health(result) == "Healthy"


@PROVIDERS
def test_one_slice_error_regression_rolls_back_naming_the_slice(
    cluster: Cluster, tmp_path: Path, provider: str
) -> None:
    result = run(cluster, "error-regression", tmp_path, provider)
    final = ModelRolloutStatus.model_validate(result.status)
    failing = {s.name for s in final.slices if s.verdict == "Fail"}
    assert failing == {"android"}, "only the regressed slice may fail"
    evidence = final.history[-1].evidence
    assert evidence, "the rollback records the guard verdicts behind it"
    assert all(g.canary is not None and g.canary > 0.05 for g in evidence if g.name == "error-rate")
    assert final_health(result) == "Degraded"


def test_one_slice_latency_regression_rolls_back_naming_the_slice(cluster: Cluster, tmp_path: Path) -> None:
    result = run(cluster, "latency-regression", tmp_path)
    final = ModelRolloutStatus.model_validate(result.status)
    assert {s.name for s in final.slices if s.verdict == "Fail"} == {"ios"}
    p99 = next(g for g in final.history[-1].evidence if g.name == "p99")
    assert p99.canary is not None
    assert p99.stable is not None
    assert p99.canary > 1.5 * p99.stable
    assert final_health(result) == "Degraded"


@PROVIDERS
def test_prediction_shift_rolls_back_in_shadow_before_any_user_sees_the_candidate(
    cluster: Cluster, tmp_path: Path, provider: str
) -> None:
    result = run(cluster, "prediction-shift", tmp_path, provider)
    assert "Canary" not in {s.phase for s in result.timeline}, "the shift must be caught in shadow"
    assert result.traffic.total(version="v2", kind="served") == 0, "the candidate answered a user"
    assert result.traffic.total(version="v2", kind="mirrored") > 0
    final = ModelRolloutStatus.model_validate(result.status)
    assert {s.name for s in final.slices if s.verdict == "Fail"} == {"android"}


def test_cold_start_never_routes_beyond_model_ready_capacity(cluster: Cluster, tmp_path: Path) -> None:
    result = run(cluster, "cold-start", tmp_path)
    replicas, minimum = 4, 2
    for sample in result.timeline:
        if sample.weight > 0 or sample.mirror > 0:
            assert sample.candidate_ready >= minimum, (
                f"traffic to v2 at {sample.t:.1f}s with {sample.candidate_ready} ready"
            )
        assert sample.weight <= 100 * sample.candidate_ready // replicas, (
            f"{sample.weight}% at {sample.t:.1f}s with {sample.candidate_ready}/{replicas} model-ready"
        )
    warming = [s.t for s in result.timeline if s.phase == "Warming"]
    assert warming, "no Warming phase observed"
    assert max(warming) - min(warming) >= 6, "the 8-24s model load did not hold the rollout in Warming"
    assert final_health(result) == "Healthy"


def test_prometheus_outage_holds_never_promotes_and_continues(cluster: Cluster, tmp_path: Path) -> None:
    result = run(cluster, "prometheus-outage", tmp_path)
    (fired, _), (restored, _) = result.events[0], result.events[1]
    during = [s for s in result.timeline if fired + 4 <= s.t <= restored]
    assert during, "no samples during the outage"
    assert {(s.phase, s.step) for s in during} == {("Canary", 1)}, "the step moved without data"
    assert any(
        s.status.get("slices") and all(sl.get("verdict") == "Inconclusive" for sl in s.status["slices"])
        for s in during
    ), "slices were not Inconclusive while Prometheus was down"
    conditions = [
        c for s in during for c in s.status.get("conditions", []) if c["type"] == "MetricsAvailable"
    ]
    assert any(c["status"] == "False" for c in conditions)
    assert result.status["stableVersion"] == "v2", "it did not continue after Prometheus returned"


def test_operator_killed_mid_canary_resumes_at_the_same_step(cluster: Cluster, tmp_path: Path) -> None:
    result = run(cluster, "operator-restart", tmp_path)
    assert result.operator_starts == 2
    killed_at, what = result.events[0]
    assert "phase Canary step 1" in what
    after = [s for s in result.timeline if s.t > killed_at]
    first_other = next((s for s in after if (s.phase, s.step) != ("Canary", 1)), None)
    assert first_other is not None
    assert (first_other.phase, first_other.step) == ("Canary", 2), "it did not resume from step 1"
    assert all(s.weight == 25 for s in after if (s.phase, s.step) == ("Canary", 1)), "weights were reset"
    assert reasons(result).count("ShadowStarted") == 1, "the shadow phase ran again after the restart"


def test_rollback_unsafe_schema_blocks_before_deploying_the_candidate(
    cluster: Cluster, tmp_path: Path
) -> None:
    result = run(cluster, "unsafe-schema", tmp_path)
    assert all(s.candidate_ready == 0 for s in result.timeline)
    assert result.traffic.total(version="v2") == 0
    safe = next(c for c in result.status["conditions"] if c["type"] == "RollbackSafe")
    assert (safe["status"], safe["reason"]) == ("False", "SchemaIncompatible")
    assert "user_id" in safe["message"]
    assert final_health(result) == "Degraded"
