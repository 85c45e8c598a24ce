"""A fault at every API call of a deciding tick, for every kind of decision: nothing is lost, undone or repeated.

For each decision (shadow start, a canary step, a rollback by a guard, a person's abort, a promotion) the tick
that takes it is found, and each of its API calls in turn is made to fail once — connection lost, 409
conflict, 500, 503, a timeout after a delay — or to be slow, or the operator process dies just before it (or
just after the last one) and a new process carries on. Every VirtualService and status revision is recorded,
and after each case:

- the decision ends carried out exactly as without the fault, and is recorded once;
- the routes never run ahead of the status: each VirtualService revision routes as the status stored at that
  moment says (the status write is the commit point);
- once the status says RolledBack, no revision gives the candidate any traffic again.
"""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from modelrollout.identity import ABORT_ANNOTATION, service_host
from modelrollout.kube import KubeError
from modelrollout.traffic.istio import read_routes
from tests.support.controller import NAME, NAMESPACE, Harness, PrometheusStub
from tests.support.fake_kube import FakeKube

SLICES = ["ios", "android", "default"]
FAULTS = ["crash", "unreachable", "409", "500", "503", "timeout", "slow"]


class Crash(BaseException):
    """The operator process dies here (SIGKILL, OOM, a lost node): nothing after this point runs."""


@dataclass
class Snapshot:
    kube: FakeKube
    now: Any
    counts: dict[tuple[str, str], tuple[float, float]]

    @classmethod
    def of(cls, h: Harness) -> Snapshot:
        kube = copy.deepcopy(h.kube)
        kube.calls, kube.faults, kube.hooks, kube.after = [], [], {}, {}
        return cls(kube, h.now, dict(h.prometheus.counts))

    def harness(self) -> Harness:
        return Harness(
            kube=copy.deepcopy(self.kube), prometheus=PrometheusStub(counts=dict(self.counts)), now=self.now
        )


@dataclass
class Revisions:
    """Every VirtualService write with the status stored at that moment, and every status write."""

    routes: list[tuple[dict[str, Any], dict[str, Any]]] = field(default_factory=list)
    statuses: list[dict[str, Any]] = field(default_factory=list)

    def watch(self, kube: FakeKube) -> None:
        def route_written(k: FakeKube) -> None:
            vs = k.virtual_service(NAMESPACE, "recommender")
            assert vs is not None
            self.routes.append(
                (copy.deepcopy(vs), copy.deepcopy(k.rollout(NAMESPACE, NAME).get("status") or {}))
            )

        def status_written(k: FakeKube) -> None:
            self.statuses.append(copy.deepcopy(k.rollout(NAMESPACE, NAME).get("status") or {}))

        kube.on("create", "virtualservice", route_written, after=True)
        kube.on("patch", "virtualservice", route_written, after=True)
        kube.on("patch", "modelrollout/status", status_written, after=True)


def routed_as_status_says(vs: dict[str, Any], status: dict[str, Any]) -> str | None:
    """Why a VirtualService revision routes otherwise than the status stored with it says (None: it does not)."""
    phase = status.get("pausedPhase") if status.get("phase") == "Paused" else status.get("phase")
    candidate = status.get("candidateVersion")
    carries = phase in ("Shadow", "Canary", "Promoting") and candidate is not None
    weight = int(status.get("canaryWeight") or 0) if carries else 0
    mirror = float(status.get("mirrorPercent") or 0) if carries else 0.0
    stable = service_host(NAME, str(status.get("stableVersion")), NAMESPACE)
    for route in read_routes(vs["spec"]["http"]):
        if route.destinations[0].host != stable:
            return f"slice {route.slice} routes to {route.destinations[0].host}, status says stable {stable}"
        candidate_share = 100 - route.weight_to(stable)
        if candidate_share != weight or route.mirror_percent != mirror:
            return (
                f"slice {route.slice}: {candidate_share}% and mirror {route.mirror_percent}% to the candidate, "
                f"status ({status.get('phase')}) says {weight}% and mirror {mirror}%"
            )
    return None


@dataclass(frozen=True)
class Decision:
    name: str
    reason: str
    step: int | None
    start: Callable[[Harness], Awaitable[None]]
    decided: Callable[[dict[str, Any]], bool]
    carried_out: Callable[[Harness], bool]


async def stable_v1_then_v2(h: Harness) -> None:
    h.create()
    await h.run_until(lambda s: s.get("phase") == "Succeeded", "v1 stable")
    h.prometheus.healthy(("v1", "v2"), SLICES)
    h.set_version("v2")


async def canary_step_1(h: Harness) -> None:
    await stable_v1_then_v2(h)
    await h.run_until(lambda s: s.get("phase") == "Canary", "canary")


async def android_regresses(h: Harness) -> None:
    await canary_step_1(h)
    h.prometheus.counts[("android", "v2")] = (1000.0, 200.0)


async def a_person_aborts(h: Harness) -> None:
    await canary_step_1(h)
    h.patch({"metadata": {"annotations": {ABORT_ANNOTATION: "abort-1"}}})


def weights_are(weight: int) -> Callable[[Harness], bool]:
    return lambda h: h.weights() == dict.fromkeys(SLICES, weight)


def mirrored(h: Harness) -> bool:
    return all(r.get("mirror") for r in h.virtual_service()["spec"]["http"])


def all_on_v2(h: Harness) -> bool:
    host = service_host(NAME, "v2", NAMESPACE)
    return all(
        [d.host for d in r.destinations] == [host] for r in read_routes(h.virtual_service()["spec"]["http"])
    )


DECISIONS = [
    Decision(
        "shadow", "ShadowStarted", None, stable_v1_then_v2, lambda s: s.get("phase") == "Shadow", mirrored
    ),
    Decision("step", "StepPassed", 2, stable_v1_then_v2, lambda s: s.get("step") == 2, weights_are(50)),
    Decision(
        "promotion",
        "Promoted",
        None,
        stable_v1_then_v2,
        lambda s: s.get("stableVersion") == "v2",
        all_on_v2,
    ),
    Decision(
        "rollback",
        "GuardFailed",
        1,
        android_regresses,
        lambda s: s.get("phase") == "RolledBack",
        weights_are(0),
    ),
    Decision(
        "abort", "Aborted", 1, a_person_aborts, lambda s: s.get("phase") == "RolledBack", weights_are(0)
    ),
]


async def brink_of(decision: Decision) -> tuple[Snapshot, list[tuple[str, str]]]:
    """The world one tick before `decision` is taken, and the API calls of the tick that takes it."""
    h = Harness()
    await decision.start(h)
    for _ in range(60):
        snapshot = Snapshot.of(h)
        probe = snapshot.harness()
        await probe.tick()
        if decision.decided(probe.status):
            return snapshot, [(c.verb, c.resource) for c in probe.kube.calls]
        await h.tick()
    raise AssertionError(
        f"{decision.name} was never taken: {h.status.get('phase')} {h.status.get('message')}"
    )


def inject(kube: FakeKube, fault: str, calls: list[tuple[str, str]], index: int) -> None:
    """Makes the `index`-th call of the next tick fail (or stall, or kill the process) once."""
    verb, resource = calls[index]
    earlier = sum(1 for c in calls[:index] if c == (verb, resource))
    if fault == "crash":
        seen = [0]

        def die(_: FakeKube) -> None:
            seen[0] += 1
            if seen[0] == earlier + 1:
                raise Crash(f"killed before {verb} {resource}")

        kube.on(verb, resource, die)
    elif fault == "slow":
        kube.faults.append(_fault(verb, resource, earlier, fail=False, delay=0.02))
    elif fault == "timeout":
        kube.faults.append(_fault(verb, resource, earlier, status=0, delay=0.02, message="timed out"))
    else:
        status = 0 if fault == "unreachable" else int(fault)
        kube.faults.append(_fault(verb, resource, earlier, status=status, message=f"injected {fault}"))


def _fault(verb: str, resource: str, skip: int, **options: Any) -> Any:
    from tests.support.fake_kube import Fault

    return Fault(verb, resource, skip=skip, times=1, **options)


def crash_after_last(kube: FakeKube, calls: list[tuple[str, str]]) -> None:
    verb, resource = calls[-1]
    total = calls.count((verb, resource))
    seen = [0]

    def die(_: FakeKube) -> None:
        seen[0] += 1
        if seen[0] == total:
            raise Crash(f"killed after {verb} {resource}")

    kube.on(verb, resource, die, after=True)


async def run_case(
    decision: Decision, snapshot: Snapshot, arm: Callable[[FakeKube], None], what: str
) -> str | None:
    """One faulty decision tick and what follows; why an invariant broke, or None."""
    h = snapshot.harness()
    revisions = Revisions()
    revisions.watch(h.kube)
    arm(h.kube)
    try:
        await h.tick()
    except Crash:
        h.restart()
    except KubeError:
        pass  # a failed read ends the tick; the daemon runs the next one
    for _ in range(20):
        if decision.decided(h.status) and decision.carried_out(h):
            break
        await h.tick()
    else:
        return f"{what}: not carried out: {h.status.get('phase')} {h.status.get('message')}"
    history = [(d["reason"], d.get("step")) for d in h.status.get("history", [])]
    taken = sum(1 for reason, step in history if reason == decision.reason and step == decision.step)
    if taken != 1:
        return f"{what}: {decision.reason} recorded {taken} times: {history}"
    for vs, status in revisions.routes:
        why = routed_as_status_says(vs, status)
        if why:
            return f"{what}: routes ahead of the status: {why}"
    rolled_back = False
    for vs, status in revisions.routes:
        rolled_back = rolled_back or status.get("phase") == "RolledBack"
        if rolled_back and any(w for w in read_weights(vs).values()):
            return f"{what}: the rolled-back candidate got traffic again: {read_weights(vs)}"
    return None


def read_weights(vs: dict[str, Any]) -> dict[str, int]:
    from modelrollout.traffic.istio import observed_weights

    return observed_weights(vs["spec"]["http"])


@pytest.mark.parametrize("decision", DECISIONS, ids=[d.name for d in DECISIONS])
@pytest.mark.parametrize("fault", FAULTS)
async def test_a_fault_at_any_call_of_a_deciding_tick_loses_nothing(decision: Decision, fault: str) -> None:
    snapshot, calls = await brink_of(decision)
    assert ("patch", "modelrollout/status") in calls, calls
    broken = []
    for index, (verb, resource) in enumerate(calls):
        what = f"{fault} at call {index} ({verb} {resource})"
        problem = await run_case(
            decision,
            snapshot,
            lambda kube, i=index: inject(kube, fault, calls, i),
            what,  # type: ignore[misc]
        )
        if problem:
            broken.append(problem)
    if fault == "crash":
        problem = await run_case(
            decision, snapshot, lambda kube: crash_after_last(kube, calls), "crash after the last call"
        )
        if problem:
            broken.append(problem)
    assert broken == [], "\n".join(broken)


@pytest.mark.parametrize("decision", DECISIONS, ids=[d.name for d in DECISIONS])
async def test_the_status_is_written_before_the_routes_that_carry_it_out(decision: Decision) -> None:
    _, calls = await brink_of(decision)
    writes = [c for c in calls if c[0] not in ("get", "list")]
    assert writes[0] == ("patch", "modelrollout/status"), writes
