"""The reconcile tick against an in-memory API, a stub Prometheus and stub webhooks, with faults per call.

These run the real controller code (observe, plan, apply, record) without a cluster; the integration tests
run the same code against the real API server.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from modelrollout.identity import CLAIM_ANNOTATION, service_host
from modelrollout.kube import KubeError
from tests.support.controller import NAME, NAMESPACE, Harness
from tests.support.fake_kube import FakeKube

SLICES = ["ios", "android", "default"]
NOTIFY = "http://hooks.test/notify"
GATE = "http://hooks.test/gate"


def phase_is(*phases: str) -> Any:
    return lambda status: status.get("phase") in phases


async def stable_v1(h: Harness, **overrides: Any) -> None:
    h.create(**overrides)
    await h.run_until(phase_is("Succeeded"), "v1 stable")
    h.prometheus.healthy(("v1", "v2"), SLICES)


async def test_a_healthy_rollout_goes_through_shadow_and_both_steps() -> None:
    h = Harness()
    await stable_v1(h)
    assert h.weights() == dict.fromkeys(SLICES, 0)
    h.set_version("v2")
    seen: list[dict[str, int]] = []

    def watch(status: dict[str, Any]) -> bool:
        seen.append(h.weights())
        return status.get("phase") == "Succeeded"

    await h.run_until(watch, "v2 promoted")
    status = h.status
    assert (status["stableVersion"], status.get("candidateVersion")) == ("v2", None)
    assert {w["ios"] for w in seen} >= {10, 50}, "both canary steps reached the routes"
    stable_host = service_host(NAME, "v2", NAMESPACE)
    routes = h.virtual_service()["spec"]["http"]
    assert [r["route"] for r in routes] == [
        [{"destination": {"host": stable_host, "port": {"number": 8080}}, "weight": 100}]
    ] * 3
    reasons = h.kube.event_reasons()
    for reason in ("NewVersion", "Deploying", "ShadowStarted", "ShadowPassed", "StepPassed", "Promoted"):
        assert reason in reasons, reasons
    reconciled = h.condition("Reconciled")
    assert (reconciled["status"], reconciled["reason"]) == ("True", "Applied")


async def test_a_failing_slice_rolls_back_in_one_route_write_and_is_named_everywhere() -> None:
    h = Harness()
    await stable_v1(h, rollback={"notify": [{"webhook": {"url": NOTIFY}}]})
    h.prometheus.counts[("android", "v2")] = (1000.0, 200.0)
    h.set_version("v2")
    writes_before = h.kube.count("patch", "virtualservice")
    await h.run_until(phase_is("RolledBack"), "rolled back")
    status = h.status
    assert "slice android" in status["message"]
    assert h.weights() == dict.fromkeys(SLICES, 0)
    assert all("mirror" not in r for r in h.virtual_service()["spec"]["http"])
    # Shadow start (mirror on) and the rollback (mirror off): nothing else touched the routes.
    assert h.kube.count("patch", "virtualservice") - writes_before == 2
    warning = [e for e in h.kube.events if e["reason"] == "GuardFailed"]
    assert [e["type"] for e in warning] == ["Warning"]
    assert "android" in warning[0]["message"]
    sent = [body for body in h.hooks.to(NOTIFY) if body["reason"] == "GuardFailed"]
    assert len(sent) == 1
    assert sent[0]["evidence"][0]["name"] == "error-rate"
    assert sent[0]["evidence"][0]["canary"] == pytest.approx(0.2)


async def test_a_failed_route_write_keeps_the_decision_says_why_and_is_retried_from_status() -> None:
    h = Harness()
    await stable_v1(h, analysis={**_analysis(), "interval": "30s"})
    h.set_version("v2")
    await h.run_until(phase_is("Warming"), "warming")
    h.kube.fail("patch", "virtualservice", status=500, message="etcdserver: request timed out")
    report = await h.tick()
    status = h.status
    assert status["phase"] == "Shadow", "the decision was committed before its route write"
    assert not any(r.get("mirror") for r in h.virtual_service()["spec"]["http"]), "the route write failed"
    reconciled = h.condition("Reconciled")
    assert (reconciled["status"], reconciled["reason"]) == ("False", "ApplyFailed")
    assert "etcdserver: request timed out (HTTP 500)" in reconciled["message"]
    assert report.next_in == 5.0, "a failed write is retried sooner than the interval"
    await h.tick()
    assert h.status["phase"] == "Shadow"
    assert all(r.get("mirror") for r in h.virtual_service()["spec"]["http"]), "re-applied from the status"
    assert h.condition("Reconciled")["status"] == "True"
    assert [e["reason"] for e in h.kube.events].count("ShadowStarted") == 1


async def test_a_foreign_write_between_read_and_write_is_merged_not_lost() -> None:
    h = Harness()
    await stable_v1(h)
    foreign = {"name": "team-debug", "route": [{"destination": {"host": "debug.example"}}]}
    edited = []

    def someone_edits(kube: Any) -> None:
        if not edited:
            edited.append(True)
            kube.edit_virtual_service(
                NAMESPACE, "recommender", lambda vs: vs["spec"]["http"].insert(0, foreign)
            )

    h.kube.on("patch", "virtualservice", someone_edits)
    h.set_version("v2")
    before = len(h.kube.calls)
    await h.run_until(phase_is("Shadow"), "shadow")
    writes = [c.failed for c in h.kube.calls[before:] if c.resource == "virtualservice" and c.verb == "patch"]
    assert writes == [True, False], "the stale write got a 409, the write after a fresh read landed"
    http = h.virtual_service()["spec"]["http"]
    assert http[0] == foreign, "the foreign route written during our write is kept, in place"
    assert all(r.get("mirror") for r in http[1:])


async def test_a_virtual_service_claimed_by_another_rollout_is_refused_naming_both() -> None:
    h = Harness()
    h.kube.virtual_services[(NAMESPACE, "recommender")] = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {
            "name": "recommender",
            "namespace": NAMESPACE,
            "resourceVersion": "1",
            "annotations": {CLAIM_ANNOTATION: "other"},
        },
        "spec": {"hosts": ["x"], "http": []},
    }
    h.create()
    for _ in range(3):
        await h.tick()
    reconciled = h.condition("Reconciled")
    assert reconciled["status"] == "False"
    assert "managed by ModelRollout other" in reconciled["message"]
    assert h.kube.virtual_service(NAMESPACE, "recommender")["spec"]["http"] == []  # type: ignore[index]


async def test_gates_allow_only_on_an_explicit_yes() -> None:
    h = Harness()
    h.hooks.answer = lambda url, body: httpx.Response(200, json={"allowed": False, "reason": "leakage found"})
    h.create(gates=[{"name": "leakage", "webhook": {"url": GATE}}])
    await h.tick()
    status = h.status
    assert status["phase"] == "Blocked"
    assert "gate leakage refused v1: leakage found" in status["message"]
    assert h.hooks.to(GATE)[0]["candidate"]["version"] == "v1"
    h.hooks.answer = lambda url, body: httpx.Response(200, json={"allowed": True})
    await h.run_until(phase_is("Succeeded"), "allowed")


async def test_a_gate_that_does_not_answer_in_time_refuses() -> None:
    h = Harness()

    def hang(url: str, body: dict[str, Any]) -> httpx.Response:
        raise httpx.ReadTimeout("too slow")

    h.hooks.answer = hang
    h.create(gates=[{"name": "slow", "webhook": {"url": GATE, "timeout": "1s"}}])
    await h.tick()
    assert "gate slow refused v1: no answer within 1s" in h.status["message"]


async def test_an_invalid_spec_is_reported_once_naming_the_field() -> None:
    h = Harness()
    h.create(replicas=0)
    await h.tick()
    status = h.status
    invalid = h.condition("InvalidSpec")
    assert invalid["status"] == "True"
    assert "spec.replicas" in invalid["message"]
    assert h.kube.event_reasons() == ["InvalidSpec"]
    writes = h.kube.count("patch", "modelrollout/status")
    await h.tick()
    assert h.kube.count("patch", "modelrollout/status") == writes, "an unchanged refusal is not rewritten"
    assert h.status == status


async def test_a_steady_tick_writes_nothing() -> None:
    h = Harness()
    await stable_v1(h)
    await h.tick()
    h.kube.writes.clear()
    before = len(h.kube.calls)
    await h.tick()
    written = [c for c in h.kube.calls[before:] if c.verb not in ("get", "list")]
    assert written == []


async def test_failed_notifications_are_counted_not_fatal() -> None:
    h = Harness()
    h.hooks.answer = lambda url, body: httpx.Response(503)
    await stable_v1(h, rollback={"notify": [{"webhook": {"url": NOTIFY}}]})
    failures = h.runtime.metrics.notification_failures.labels(NAMESPACE, NAME)._value.get()
    assert failures >= 2  # NewVersion, Deploying, InitialDeploy: each sent once, each refused


@pytest.mark.parametrize(
    ("verb", "resource"),
    [
        ("get", "modelrollout"),
        ("list", "deployment"),
        ("get", "virtualservice"),
        ("patch", "virtualservice"),
        ("apply", "deployment"),
        ("apply", "service"),
        ("patch", "modelrollout/status"),
        ("create", "event"),
    ],
)
@pytest.mark.parametrize("status", [0, 409, 500, 503])
async def test_an_api_fault_at_any_call_of_a_tick_loses_no_decision(
    verb: str, resource: str, status: int
) -> None:
    """Each call of the step into shadow fails once; the rollout still reaches shadow, once, unharmed."""
    h = Harness()
    await stable_v1(h)
    h.set_version("v2")
    await h.run_until(phase_is("Warming"), "warming")
    h.kube.fail(verb, resource, status=status, message="injected")
    raised: list[int] = []
    for _ in range(2):  # the failing tick and its retry, both well inside the 10s shadow
        try:
            await h.tick()
        except KubeError as error:  # a read that fails ends the tick; the daemon retries it
            raised.append(error.status)
    assert raised in ([], [status])
    status_now = h.status
    assert status_now["phase"] == "Shadow", status_now.get("message")
    started = [e for e in h.kube.events if e["reason"] == "ShadowStarted"]
    assert len(started) <= 1, "the decision was taken once"
    assert all(r.get("mirror") for r in h.virtual_service()["spec"]["http"])


def _analysis() -> dict[str, Any]:
    from tests.support.world import spec_dict

    return dict(spec_dict()["analysis"])


async def test_a_status_planned_from_a_stale_read_is_refused_and_the_tick_plans_again() -> None:
    """Fencing: another replica's newer decision lands between this tick's read and its status write."""
    h = Harness()
    await stable_v1(h)
    h.set_version("v2")
    newer = {"phase": "RolledBack", "stableVersion": "v1", "message": "another replica rolled back"}

    def other_replica_decides(kube: FakeKube) -> None:
        stored = kube.rollout(NAMESPACE, NAME)
        stored["status"] = newer
        stored["metadata"]["resourceVersion"] = kube._next()
        kube.rollouts[(NAMESPACE, NAME)] = stored
        kube.hooks.clear()  # once

    h.kube.on("patch", "modelrollout/status", other_replica_decides)
    report = await h.tick()
    assert h.status == newer  # the stale plan did not overwrite the newer decision
    assert report.next_in == 0.0  # and the daemon plans again at once, from what is there now
    again = await h.tick()
    assert again.next_in > 0  # planned from the fresh read, so its write is accepted
    assert h.status != newer  # and it recorded its own decision
