"""A tiny pure world for driving the planner tick by tick: workloads load, verdicts are scripted."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from modelrollout.analysis.experiment import Arm, Counts
from modelrollout.analysis.results import AnalysisResult, SliceVerdict
from modelrollout.api.spec import ModelRolloutSpec
from modelrollout.api.status import Fingerprint, GuardVerdict, ModelRolloutStatus, Samples, Verdict
from modelrollout.errors import InvalidTemplate
from modelrollout.plan import (
    Action,
    Commands,
    EnsureWorkload,
    GateResult,
    Observations,
    RemoveWorkload,
    SetRoutes,
    WorkloadState,
    needs,
    plan,
)
from modelrollout.workloads.render import fingerprint
from tests.support import specs

T0 = datetime(2026, 11, 21, 12, 0, 0, tzinfo=UTC)


def spec_dict(**overrides: Any) -> dict[str, Any]:
    """The planner's spec: two slices, a 10s shadow and two 10s steps judged every 5s; `overrides` replace
    top-level fields whole."""
    base = specs.rollout_spec(
        "v1",
        template=specs.template(specs.container("example.invalid/server:1", port=None)),
        replicas=4,
        readiness={"minReadyReplicas": 2, "loadTimeout": "60s"},
        strategy={
            "shadow": {"mirrorPercent": 100, "duration": "10s"},
            "canary": {"steps": [{"weight": 10, "pause": "10s"}, {"weight": 50, "pause": "10s"}]},
        },
        analysis=specs.analysis_with(
            {"name": "error-rate", "metric": "errorRate", "max": 0.05, "immediate": True},
            {"name": "error-ratio", "metric": "errorRate", "maxRatioToStable": 1.5, "failureLimit": 2},
            interval="5s",
        ),
    )
    return {**base, **overrides}


def make_spec(**overrides: Any) -> ModelRolloutSpec:
    return ModelRolloutSpec.model_validate(spec_dict(**overrides))


def guard(name: str, verdict: Verdict, reason: str = "") -> GuardVerdict:
    return GuardVerdict(
        name=name, metric="errorRate", verdict=verdict, reason=reason, samples=Samples(stable=500, canary=500)
    )


def verdicts(
    spec: ModelRolloutSpec,
    now: datetime,
    per_slice: dict[str, Verdict] | None = None,
    default: Verdict = "Pass",
) -> AnalysisResult:
    """Every guard of every slice gets the slice's verdict (Pass unless named)."""
    per_slice = per_slice or {}
    slices = {}
    for name in spec.slice_names():
        verdict = per_slice.get(name, default)
        slices[name] = SliceVerdict(
            name=name,
            verdict=verdict,
            samples=Samples(stable=500, canary=500),
            # like the judges' reasons, each starts with the guard's name
            guards=[
                guard(g.name, verdict, f"{g.name} {verdict.lower()} on {name}") for g in spec.analysis.guards
            ],
        )
    return AnalysisResult(slices=slices, queries=len(spec.analysis.guards), errors=[], evaluated_at=now)


Script = Callable[["World"], AnalysisResult | None]


@dataclass
class World:
    """Applies the planner's actions to simulated Deployments and a simulated VirtualService."""

    spec: ModelRolloutSpec
    status: ModelRolloutStatus = field(default_factory=ModelRolloutStatus)
    now: datetime = T0
    load_ticks: int = 1  # ticks a new Deployment needs before its replicas are model-ready
    ready_cap: dict[str, int] = field(default_factory=dict)  # limit ready replicas per version
    deployments: dict[str, tuple[int, int]] = field(
        default_factory=dict
    )  # version -> (replicas, age in ticks)
    routes: SetRoutes | None = None
    route_writes: int = 0
    commands: Commands = field(default_factory=Commands)
    gates: list[GateResult] | None = None
    generation: int = 1
    actions: list[Action] = field(default_factory=list)
    script: Script | None = None
    analysis_calls: int = 0
    experiment: Callable[[World], Counts | str | None] | None = None
    """A/B: the metric's counters the controller would read this tick (only when analysis is due)."""

    def workloads(self) -> dict[str, WorkloadState]:
        out = {}
        for version, (replicas, age) in self.deployments.items():
            ready = replicas if age >= self.load_ticks else 0
            ready = min(ready, self.ready_cap.get(version, ready))
            out[version] = WorkloadState(version=version, replicas=replicas, ready_replicas=ready)
        return out

    def observations(self) -> Observations:
        need = needs(self.spec, self.status, self.now)
        analysis = None
        if need.analysis:
            self.analysis_calls += 1
            analysis = self.script(self) if self.script else verdicts(self.spec, self.now)
        return Observations(
            now=self.now,
            generation=self.generation,
            workloads=self.workloads(),
            analysis=analysis,
            experiment=self.experiment(self) if need.analysis and self.experiment else None,
            gates=self.gates if need.gates else None,
            commands=self.commands,
            candidate_fingerprint=self.fingerprint(),
        )

    def fingerprint(self) -> Fingerprint | str:
        """What the controller observes: the spec's version rendered, or why its template cannot be."""
        try:
            return fingerprint(self.spec, self.spec.model.version, self.spec.model.uri)
        except InvalidTemplate as error:
            return str(error)

    def tick(self, seconds: float = 5.0) -> list[Action]:
        result = plan(self.spec, self.status, self.observations())
        self.status = result.status
        self.tick_apply(result.actions, seconds)
        return result.actions

    def tick_apply(self, actions: list[Action], seconds: float = 5.0) -> None:
        """Carries out a plan's actions and lets time pass."""
        self.actions = actions
        for action in actions:
            if isinstance(action, EnsureWorkload):
                _, age = self.deployments.get(action.version, (action.replicas, -1))
                self.deployments[action.version] = (action.replicas, age)
            elif isinstance(action, RemoveWorkload):
                self.deployments.pop(action.version, None)
            elif isinstance(action, SetRoutes):
                if action != self.routes:
                    self.route_writes += 1
                self.routes = action
        self.deployments = {v: (r, age + 1) for v, (r, age) in self.deployments.items()}
        self.now += timedelta(seconds=seconds)

    def run_until(self, predicate: Callable[[World], bool], limit: int = 200, seconds: float = 5.0) -> None:
        for _ in range(limit):
            if predicate(self):
                return
            self.tick(seconds)
        raise AssertionError(
            f"condition not reached in {limit} ticks; status: {self.status.phase} {self.status.message}"
        )

    def bootstrap(self) -> None:
        """Deploys the spec's version as the first stable version."""
        self.run_until(lambda w: w.status.phase == "Succeeded")

    def set_version(self, version: str, **model: Any) -> None:
        data = self.spec.model_dump(by_alias=True, exclude_none=True)
        data["model"] = {
            **data["model"],
            "version": version,
            "uri": f"s3://models/recommender/{version}",
            **model,
        }
        self.spec = ModelRolloutSpec.model_validate(data)
        self.generation += 1


def conversions(rates: dict[str, tuple[float, float]], per_tick: int = 2000) -> Callable[[World], Counts]:
    """A/B counters that grow by `per_tick` trials per arm and slice each tick, converting at the expected
    (stable, candidate) rate of each slice: the planner sees the effect without sampling noise."""
    looks = {"n": 0}

    def read(world: World) -> Counts:
        looks["n"] += 1
        trials = float(per_tick * looks["n"])
        return {
            name: {"stable": Arm(p_s * trials, trials), "canary": Arm(p_c * trials, trials)}
            for name, (p_s, p_c) in rates.items()
        }

    return read
