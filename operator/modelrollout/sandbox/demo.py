"""Runs a scenario end to end in the sandbox: fleet, traffic, operator, the rollout, faults, and the verdict.

`modelrollout demo --scenario FILE` and the e2e tests use the same runner; the tests then look into the
recorded timeline and traffic counters for what a scenario must (and must never) show.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from modelrollout.api import commands
from modelrollout.api.common import seconds
from modelrollout.api.crd import render as render_crd
from modelrollout.api.status import TERMINAL
from modelrollout.identity import HTTP_ROUTE_KIND
from modelrollout.kube import KubeApi, connect
from modelrollout.sandbox.cluster import Sandbox, SandboxState, wait_established
from modelrollout.sandbox.fleet import SEED_ENV, Fleet
from modelrollout.sandbox.images import ImageSet, ensure_images
from modelrollout.sandbox.operator_pod import OperatorPod
from modelrollout.sandbox.operator_process import OperatorProcess
from modelrollout.sandbox.pod_fleet import PodFleet, PodView
from modelrollout.sandbox.pod_server import BEHAVIOURS_ENV
from modelrollout.sandbox.realnode import RealNodeState, placement
from modelrollout.sandbox.report import write_report
from modelrollout.sandbox.scenario import Event, Scenario, load_scenario
from modelrollout.sandbox.trafficgen import TrafficGenerator, TrafficStats
from modelrollout.traffic import gatewayapi, istio
from modelrollout.traffic.provider import route_object

VERDICT_STYLE = {"Pass": "green", "Fail": "bold red", "Inconclusive": "yellow"}


@dataclass
class Sample:
    """One observation of the rollout during the run (the report and the e2e tests read these)."""

    t: float
    wall: float
    """Wall-clock time of the observation (seconds since the epoch), comparable with the status's times."""
    phase: str | None
    step: int
    weight: int
    mirror: float
    candidate_ready: int
    status: dict[str, Any]
    candidate_served: int = 0
    """User requests (probes left out) sent to the candidate so far."""
    generation: int = 0
    """metadata.generation of the rollout when sampled (with `status`, what tools judging it read)."""


@dataclass(frozen=True)
class Revision:
    """One revision of the VirtualService as it was written, and the candidate's capacity when it was seen."""

    t: float
    resource_version: str
    weights: dict[str, int]
    """Per slice, the percent of requests routed to the candidate."""
    mirror: dict[str, float]
    candidate_ready: int
    """Model-ready candidate replicas read right after this revision: pods whose Ready condition the
    kubelet set (real node), or the Deployment's readyReplicas (kwok)."""


@dataclass
class PodRecord:
    """The real node's pods of a run: requests sent to each pod incarnation and which were ever Ready."""

    sent: dict[tuple[str, int], int]
    ever_ready: set[tuple[str, int]]
    final: dict[str, PodView]
    failed_load: list[str]
    """Replicas the fail-replica-load event made fail."""


@dataclass
class DemoResult:
    scenario: Scenario
    namespace: str
    status: dict[str, Any]
    problems: list[str]
    timeline: list[Sample]
    traffic: TrafficStats
    events: list[tuple[float, str]]
    report: Path | None
    operator_starts: int
    elapsed: float
    revisions: list[Revision] = field(default_factory=list)
    pods: PodRecord | None = None

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class _Fault:
    event: Event
    fired_at: float | None = None
    undone: bool = False


@dataclass
class _Run:
    kube: KubeApi
    namespace: str
    name: str
    candidate: str
    stable: str
    faults: list[_Fault] = field(default_factory=list)
    log: list[tuple[float, str]] = field(default_factory=list)
    revisions: list[Revision] = field(default_factory=list)
    failed_load: list[str] = field(default_factory=list)
    began: float = field(default_factory=time.monotonic)


class DemoRunner:
    def __init__(
        self,
        scenario: Scenario | Path | str,
        *,
        sandbox: Sandbox | None = None,
        namespace: str | None = None,
        console: Console | None = None,
        reports: Path | None = None,
        live: bool = True,
        keep: bool = False,
        status_refresh: str = "1s",
        provider: str | None = None,
        operator: Literal["process", "pod"] = "process",
    ) -> None:
        """`provider` moves a scenario file's traffic to that provider (`scenario.on_provider`); `operator="pod"`
        runs the operator from the Helm chart and its image on the real node."""
        self.scenario = scenario if isinstance(scenario, Scenario) else load_scenario(scenario, provider)
        self.own_sandbox = sandbox is None
        self.sandbox = sandbox or Sandbox(".sandbox")
        self.namespace = namespace or f"demo-{self.scenario.name}"
        self.console = console or Console(highlight=False)
        self.reports = reports
        self.live = live
        self.keep = keep
        # Evidence refreshed every tick by default: the live view and the report show current guard values.
        self.status_refresh = status_refresh
        self.operator_mode = operator
        self.operator: OperatorProcess | OperatorPod | None = None
        self.real_node: RealNodeState | None = None
        self.images: ImageSet | None = None

    # Entry point -----------------------------------------------------------------------------------------
    async def run(self) -> DemoResult:
        say = self.console.print
        started = time.monotonic()
        if self.own_sandbox:
            say(f"[bold]sandbox[/bold]: starting a local control plane and Prometheus in {self.sandbox.root}")
            self.sandbox.log = lambda line: say(line)
            await asyncio.to_thread(self.sandbox.up)
        state = self.sandbox.state
        assert state is not None, "the sandbox must be up"
        kube = await connect(state.kubeconfig)
        prometheus_url = state.prometheus
        if self.scenario.node == "real" or self.operator_mode == "pod":
            say("[bold]real node[/bold]: a kubelet on containerd and runc beside the kwok nodes")
            self.real_node = await asyncio.to_thread(self.sandbox.start_real_node)
            self.images = await asyncio.to_thread(ensure_images, lambda line: None)
        fleet: Fleet | PodFleet
        if self.scenario.node == "real":
            assert self.real_node is not None
            fleet = PodFleet(
                kube,
                self.sandbox,
                self.namespace,
                str(self.scenario.rollout.metadata.name),
                self.scenario.rollout.spec.readiness.port,
                self.real_node.pod_cidr,
            )
        else:
            fleet = Fleet.from_scenario(self.sandbox, self.scenario, namespace=self.namespace)
        operator: OperatorProcess | OperatorPod
        if self.operator_mode == "pod":
            assert self.real_node is not None
            assert self.images is not None
            prometheus_url = self.real_node.prometheus_url  # as a pod on the real node reaches it
            operator = OperatorPod(
                Path(state.kubeconfig), self.namespace, self.images.operator.ref, self.sandbox.logs,
                status_refresh=self.status_refresh,
            )  # fmt: skip
        else:
            # Evidence refreshed every tick: the live view and the report show current guard values.
            operator = OperatorProcess(
                Path(state.kubeconfig), self.namespace, self.sandbox.logs, status_refresh=self.status_refresh
            )
        self.operator = operator
        traffic: TrafficGenerator | None = None
        try:
            await self._prepare(state, kube)
            where = "as a pod from the Helm chart" if self.operator_mode == "pod" else "as a local process"
            say(f"[bold]operator[/bold]: starting {where}, watching namespace {self.namespace}")
            await asyncio.to_thread(operator.start)
            self.sandbox.add_scrape_target(f"operator-{self.namespace}", operator.metrics_address)
            if isinstance(fleet, PodFleet):
                await fleet.start()
            run = _Run(
                kube,
                self.namespace,
                str(self.scenario.rollout.metadata.name),
                self.scenario.candidate_version,
                self.scenario.stable_version,
                [_Fault(event) for event in self.scenario.events],
            )
            say(f"[bold]fleet[/bold]: starting model server {run.stable} (simulated, on 127.0.0.1)")
            await fleet.astart(run.stable)
            say(
                f"[bold]rollout[/bold]: applying {run.name} at {run.stable} (the first version becomes stable)"
            )
            await self._apply(kube, self._placed(self.scenario.manifest(self.namespace, prometheus_url)))
            await self._wait_stable(kube, run, within=90)
            traffic = self._traffic(kube, fleet, run)
            await traffic.start()
            kind = route_object(self.scenario.rollout.spec).kind
            say(f"[bold]traffic[/bold]: {self._rates()} following the live {kind}")
            await asyncio.sleep(3)  # stable's own baseline in the window before the candidate appears
            await fleet.astart(run.candidate)
            say(f"[bold]rollout[/bold]: {run.stable} -> {run.candidate}: applying the new version")
            run.began = time.monotonic()
            recorder = asyncio.create_task(self._record(run, fleet))
            await self._apply(
                kube, self._placed(self.scenario.updated_manifest(self.namespace, prometheus_url))
            )
            generation = int(
                (await kube.get_rollout(self.namespace, run.name) or {})["metadata"]["generation"]
            )
            try:
                timeline, status = await self._follow(run, operator, fleet, generation, traffic.stats)
            finally:
                recorder.cancel()
                await asyncio.gather(recorder, return_exceptions=True)
            problems = self.scenario.expect.failures(status)
            if not timeline or timeline[-1].phase not in TERMINAL:
                problems.insert(0, f"did not finish within {self.scenario.timeout}")
            report = write_report(
                self._report_dir(), self.scenario, self.namespace, timeline, run.log, traffic.stats
            )
            result = DemoResult(
                scenario=self.scenario,
                namespace=self.namespace,
                status=status,
                problems=problems,
                timeline=timeline,
                traffic=traffic.stats,
                events=run.log,
                report=report,
                operator_starts=operator.starts,
                elapsed=time.monotonic() - started,
                revisions=run.revisions,
                pods=self._pod_record(fleet, run),
            )
            self._summary(result)
            return result
        finally:
            if traffic is not None:
                await traffic.stop()
            fleet.stop_all()
            operator.stop()
            if isinstance(fleet, PodFleet):  # the real node's pods would keep loading a shared machine
                self.sandbox.kubectl("delete", "namespace", self.namespace, "--wait=false", check=False)
            self.sandbox.remove_scrape_target(f"operator-{self.namespace}")
            await kube.close()
            if self.own_sandbox and not self.keep:
                say("[bold]sandbox[/bold]: tearing down")
                await asyncio.to_thread(self.sandbox.down)

    # Steps -------------------------------------------------------------------------------------------------
    async def _prepare(self, state: SandboxState, kube: KubeApi) -> None:
        self.sandbox.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", stdin=render_crd())
        wait_established(self.sandbox.kubeconfig, "modelrollouts.modelrollout.io")
        if self.sandbox.kubectl("get", "namespace", self.namespace, check=False).returncode != 0:
            self.sandbox.kubectl("create", "namespace", self.namespace)

    async def _apply(self, kube: KubeApi, manifest: dict[str, Any]) -> None:
        await asyncio.to_thread(self.sandbox.kubectl, "apply", "-f", "-", stdin=yaml.safe_dump(manifest))

    async def _wait_stable(self, kube: KubeApi, run: _Run, within: float) -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            body = await kube.get_rollout(run.namespace, run.name) or {}
            status = body.get("status") or {}
            if status.get("phase") == "Succeeded" and status.get("stableVersion") == run.stable:
                return
            await asyncio.sleep(0.5)
        raise TimeoutError(f"{run.name} did not make {run.stable} stable within {within:.0f}s")

    def _placed(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """With `node: real`: the model-server image on the real node, each version's behaviour in its env."""
        if self.scenario.node != "real":
            return manifest
        assert self.images is not None
        pod = manifest["spec"]["template"].setdefault("spec", {})
        pod.update(placement())
        behaviours = {
            version: behaviour.model_dump(mode="json", by_alias=True, exclude_none=True)
            for version, behaviour in self.scenario.fleet.versions.items()
        }
        server = pod["containers"][0]
        server["image"] = self.images.model_server.ref
        server["imagePullPolicy"] = "Never"
        server["env"] = [
            *(server.get("env") or []),
            {"name": BEHAVIOURS_ENV, "value": json.dumps(behaviours, sort_keys=True)},
            {"name": SEED_ENV, "value": str(self.scenario.fleet.seed)},
            {"name": "PROMETHEUS_DISABLE_CREATED_SERIES", "value": "true"},
        ]
        return manifest

    async def _record(self, run: _Run, fleet: Fleet | PodFleet) -> None:
        """Every revision of the route object (VirtualService or HTTPRoute), with the candidate's model-ready replicas read right after it
        (readiness only grows during a load, so the count is never below what the operator could have seen)."""
        target = route_object(self.scenario.rollout.spec)
        gateway = target.kind == HTTP_ROUTE_KIND
        read = run.kube.get_http_route if gateway else run.kube.get_virtual_service
        observe = gatewayapi if gateway else istio
        seen = ""
        while True:
            body = await read(run.namespace, target.name)
            version = str((body or {}).get("metadata", {}).get("resourceVersion") or "")
            if body is not None and version != seen:
                seen = version
                routes = target.routes(body)
                if isinstance(fleet, PodFleet):
                    pods = [PodView.of(p) for p in await run.kube.list_pods(run.namespace, run.name)]
                    ready = sum(1 for p in pods if p.version == run.candidate and p.ready)
                else:
                    ready = await self._candidate_ready(run)
                run.revisions.append(
                    Revision(
                        t=time.monotonic() - run.began,
                        resource_version=version,
                        weights=observe.observed_weights(routes),
                        mirror=observe.observed_mirror(routes),
                        candidate_ready=ready,
                    )
                )
            await asyncio.sleep(0.2)

    def _pod_record(self, fleet: Fleet | PodFleet, run: _Run) -> PodRecord | None:
        if not isinstance(fleet, PodFleet):
            return None
        return PodRecord(dict(fleet.sent), set(fleet.ever_ready), dict(fleet.pods), list(run.failed_load))

    def _traffic(self, kube: KubeApi, fleet: Fleet | PodFleet, run: _Run) -> TrafficGenerator:
        target = route_object(self.scenario.rollout.spec)
        read = kube.get_http_route if target.kind == HTTP_ROUTE_KIND else kube.get_virtual_service
        versions: dict[str, str] = {}

        async def provider() -> dict[str, Any] | None:
            return await read(run.namespace, target.name)

        async def resolve(host: str) -> str | None:
            service = host.split(".", 1)[0]  # a Service FQDN (Istio) or name[.namespace] (Gateway API)
            if service not in versions:
                versions.update(await kube.service_versions(run.namespace, run.name))
            return versions.get(service)

        traffic = self.scenario.traffic
        return TrafficGenerator(
            self.scenario.loads(),
            provider,
            resolve,
            fleet.endpoint,
            seed=7,
            arrival=traffic.arrival,
            concurrency=traffic.concurrency,
            networks=[self.real_node.pod_cidr] if isinstance(fleet, PodFleet) and self.real_node else [],
        )

    async def _follow(
        self,
        run: _Run,
        operator: OperatorProcess | OperatorPod,
        fleet: Fleet | PodFleet,
        generation: int,
        stats: TrafficStats,
    ) -> tuple[list[Sample], dict[str, Any]]:
        timeline: list[Sample] = []
        began = run.began
        deadline = began + seconds(self.scenario.timeout)
        status: dict[str, Any] = {}
        display = Live(console=self.console, refresh_per_second=4, transient=False) if self.live else None
        if display is not None:
            display.start()
        try:
            settled_at: float | None = None
            while time.monotonic() < deadline:
                elapsed = time.monotonic() - began
                body = await run.kube.get_rollout(run.namespace, run.name) or {}
                status = body.get("status") or {}
                ready = await self._candidate_ready(run)
                timeline.append(
                    Sample(
                        t=elapsed,
                        wall=time.time(),
                        phase=status.get("phase"),
                        step=int(status.get("step") or 0),
                        weight=int(status.get("canaryWeight") or 0),
                        mirror=float(status.get("mirrorPercent") or 0.0),
                        candidate_ready=ready,
                        status=status,
                        candidate_served=self._user_requests(stats, run.candidate),
                        generation=int((body.get("metadata") or {}).get("generation") or 0),
                    )
                )
                await self._faults(run, operator, fleet, elapsed, status)
                if display is not None:
                    display.update(self._view(run, status, elapsed))
                # The status commits a decision before its route write lands (Reconciled=Unknown meanwhile):
                # a run ends once that write is done and the traffic generator has had time to read it back.
                finished = (
                    int(status.get("observedGeneration") or 0) >= generation
                    and status.get("phase") in TERMINAL
                    and _reconciled_known(status)
                )
                pending = [
                    f for f in run.faults if f.fired_at is not None and not f.undone and f.event.duration
                ]
                if finished and not pending:
                    settled_at = settled_at if settled_at is not None else time.monotonic() + SETTLE_SECONDS
                    if time.monotonic() >= settled_at:
                        break
                await asyncio.sleep(0.5)
        finally:
            if display is not None:
                display.stop()
        return timeline, status

    def _user_requests(self, stats: TrafficStats, version: str) -> int:
        return sum(
            stats.total(slice=load.name, version=version, kind="served")
            for load in self.scenario.slice_loads()
        )

    async def _candidate_ready(self, run: _Run) -> int:
        for item in await run.kube.list_deployments(run.namespace, run.name):
            labels = item["metadata"].get("labels") or {}
            if labels.get("modelrollout.io/version") == run.candidate:
                return int((item.get("status") or {}).get("readyReplicas") or 0)
        return 0

    # Faults and operations -------------------------------------------------------------------------------
    async def _faults(
        self,
        run: _Run,
        operator: OperatorProcess | OperatorPod,
        fleet: Fleet | PodFleet,
        elapsed: float,
        status: dict[str, Any],
    ) -> None:
        for fault in run.faults:
            event = fault.event
            if fault.fired_at is None and event.due(elapsed, status):
                fault.fired_at = elapsed
                await self._act(run, operator, fleet, event, undo=False)
                run.log.append((elapsed, self._describe(event, status)))
                if event.action == "restart-operator":
                    fault.undone = True
            elif (
                fault.fired_at is not None
                and not fault.undone
                and event.duration is not None
                and elapsed >= fault.fired_at + seconds(event.duration)
            ):
                fault.undone = True
                await self._act(run, operator, fleet, event, undo=True)
                run.log.append((elapsed, f"{event.action} over: started again"))

    def _describe(self, event: Event, status: dict[str, Any]) -> str:
        where = f"phase {status.get('phase')} step {status.get('step', 0)} weight {status.get('canaryWeight', 0)}%"
        lasting = f" for {event.duration}" if event.duration else ""
        return f"{event.action}{lasting} at {where}"

    async def _act(
        self,
        run: _Run,
        operator: OperatorProcess | OperatorPod,
        fleet: Fleet | PodFleet,
        event: Event,
        *,
        undo: bool,
    ) -> None:
        action = event.action
        if action == "stop-prometheus":
            if undo:
                await asyncio.to_thread(self.sandbox.restart_prometheus)
            else:
                await asyncio.to_thread(self.sandbox.stop_component, "prometheus")
        elif action in ("stop-operator", "restart-operator"):
            if undo:
                await asyncio.to_thread(operator.start)
            else:
                await asyncio.to_thread(operator.kill)
                if action == "restart-operator":
                    await asyncio.to_thread(operator.start)
        elif action == "fail-replica-load":
            assert isinstance(fleet, PodFleet)
            version = (
                run.candidate
                if event.version == "candidate"
                else run.stable
                if event.version == "stable"
                else str(event.version)
            )
            run.failed_load.append(await fleet.fail_load(version))
        elif action == "stop-fleet-version":
            version = {"stable": run.stable, "candidate": run.candidate}.get(
                event.version or "", event.version or ""
            )
            if undo:
                await fleet.astart(version)
            else:
                await fleet.astop(version)
        else:
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%f")
            requests: dict[str, dict[str, str | None]] = {
                "pause": {commands.PAUSED: "true"},
                "resume": {commands.PAUSED: None},
                "promote": {commands.PROMOTE: stamp},
                "abort": {commands.ABORT: stamp},
            }
            annotations = requests[action]
            await run.kube.patch_rollout(run.namespace, run.name, {"metadata": {"annotations": annotations}})

    # Output ------------------------------------------------------------------------------------------------
    def _rates(self) -> str:
        return ", ".join(f"{load.name} {load.rate:g}/s" for load in self.scenario.loads())

    def _view(self, run: _Run, status: dict[str, Any], elapsed: float) -> Group:
        phase = status.get("phase") or "-"
        steps = len(self.scenario.rollout.spec.strategy.steps())
        step = f"  step {status.get('step', 0)}/{steps}" if steps else ""
        head = Text.assemble(
            (f"{self.scenario.name}  ", "bold"),
            (f"{elapsed:5.1f}s  ", "dim"),
            (f"{phase}", "bold cyan"),
            f"{step}  weight {status.get('canaryWeight', 0)}%"
            f"  mirror {status.get('mirrorPercent', 0):g}%  {status.get('stableVersion')} -> {run.candidate}",
        )
        table = Table(show_edge=False, pad_edge=False, box=None)
        for column in ("slice", "weight", "verdict", "samples s/c", "guards (canary vs stable | bound)"):
            table.add_column(column)
        for item in status.get("slices") or []:
            verdict = item.get("verdict") or "-"
            guards = []
            for guard in item.get("guards") or []:
                style = VERDICT_STYLE.get(guard.get("verdict", ""), "")
                guards.append(
                    Text(
                        f"{guard['name']} {_num(guard.get('canary'))} vs {_num(guard.get('stable'))}"
                        f" | {_num(guard.get('threshold'))}  ",
                        style=style,
                    )
                )
            samples = item.get("samples") or {}
            table.add_row(
                item["name"],
                f"{item.get('canaryWeight', 0)}%",
                Text(verdict, style=VERDICT_STYLE.get(verdict, "")),
                f"{samples.get('stable', 0)}/{samples.get('canary', 0)}",
                Text.assemble(*guards) if guards else Text("-"),
            )
        message = Text(str(status.get("message") or ""), style="italic")
        events = [Text(f"  {t:5.1f}s {what}", style="magenta") for t, what in run.log[-3:]]
        return Group(head, table, message, *events)

    def _summary(self, result: DemoResult) -> None:
        say = self.console.print
        status = result.status
        say()
        say(
            f"[bold]outcome[/bold]: {status.get('phase')} (stable {status.get('stableVersion')}) in {result.elapsed:.0f}s"
        )
        say(f"[bold]decision[/bold]: {status.get('message')}")
        history = status.get("history") or []
        for decision in history[-8:]:
            say(f"  {decision.get('time', '')[11:19]} {decision.get('reason'):<18} {decision.get('message')}")
            for evidence in decision.get("evidence") or []:
                say(f"      evidence: {evidence.get('name')}: {evidence.get('reason')}")
        served = result.traffic.total(version=result.scenario.candidate_version, kind="served")
        mirrored = result.traffic.total(version=result.scenario.candidate_version, kind="mirrored")
        say(f"[bold]traffic[/bold]: candidate served {served} user requests and received {mirrored} mirrored")
        if result.report is not None:
            say(f"[bold]report[/bold]: {result.report}")
        if result.ok:
            say(f"[bold green]as expected[/bold green]: {result.scenario.expect.phase}")
        else:
            for problem in result.problems:
                say(f"[bold red]unexpected[/bold red]: {problem}")

    def _report_dir(self) -> Path:
        return self.reports or (self.sandbox.root / "reports")


def _num(value: Any) -> str:
    if value is None:
        return "-"
    number = float(value)
    return f"{number:.3g}"


def run_demo(
    scenario: Path, keep: bool = False, console: Console | None = None, provider: str | None = None
) -> int:
    """`modelrollout demo`: exit 0 exactly when the outcome matches the scenario's expectation."""
    runner = DemoRunner(scenario, console=console, keep=keep, provider=provider)
    result = asyncio.run(runner.run())
    return 0 if result.ok else 1


SETTLE_SECONDS = 2.0
"""How long a run keeps sampling after its last decision's writes landed: the traffic generator re-reads routes
about every second, and a test reads from it where traffic went after the final write."""


def _reconciled_known(status: dict[str, Any]) -> bool:
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Reconciled":
            return bool(condition.get("status") != "Unknown")
    return True
