"""Every state a ModelRollout can show, as a live object made by the real planner, and what each ecosystem tool
must read from it: the table in docs/operations.md ("What kstatus, Argo CD and kubectl read").

`planner_states()` drives `World` (the planner over simulated workloads) into every phase the planner can
produce, plus the states around it (no status yet, a spec the operator has not observed, a refused spec,
awaiting a manual promotion), and returns one live object per state. `EXPECTED` is the docs table as data; a
test keeps the two equal, and the upstream tools are run on the objects.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

from modelrollout.api.crd import NEW_STATUS
from modelrollout.api.spec import ModelRolloutSpec
from modelrollout.api.status import Phase
from modelrollout.identity import API_VERSION, KIND
from modelrollout.plan import Commands, GateResult
from modelrollout.plan.conditions import AWAITING_PROMOTION, spec_refused
from tests.support.world import World, conversions, make_spec, spec_dict, verdicts

DOCS = Path(__file__).resolve().parents[2] / "docs" / "operations.md"
TABLE_HEADING = "### What kstatus, Argo CD and kubectl read"
WAIT_CONDITIONS = ("Ready", "Reconciling", "Stalled", "Progressing", "Degraded", "InvalidSpec")
"""The conditions the table lists for `kubectl wait --for=condition=X`."""

NO_STATUS = "no status yet"
NOT_OBSERVED = "new spec not yet observed"
AWAITING = "Canary awaiting a manual promotion"
PREVIEW_AWAITING = "Preview awaiting a manual promotion"
REFUSED = "spec refused (InvalidSpec)"


@dataclass(frozen=True)
class Expected:
    """One row of the docs table."""

    kstatus: str
    argocd: str
    wait: frozenset[str]
    """Conditions `kubectl wait --for=condition=X` returns for."""
    phase_column: str
    ready_column: str


def _row(kstatus: str, argocd: str, wait: str, phase: str, ready: str) -> Expected:
    return Expected(kstatus, argocd, frozenset(wait.split()), phase, ready)


IN_PROGRESS = ("InProgress", "Progressing", "Reconciling Progressing")
EXPECTED: dict[str, Expected] = {
    NO_STATUS: _row("InProgress", "Progressing", "", "(blank)", "(blank)"),
    NOT_OBSERVED: _row("InProgress", "Progressing", "", "Succeeded", "True"),
    "Pending": _row(*IN_PROGRESS, "Pending", "False"),
    "Warming": _row(*IN_PROGRESS, "Warming", "False"),
    "Shadow": _row(*IN_PROGRESS, "Shadow", "False"),
    "Canary": _row(*IN_PROGRESS, "Canary", "False"),
    AWAITING: _row("InProgress", "Suspended", "Reconciling Progressing", "Canary", "False"),
    "Preview": _row(*IN_PROGRESS, "Preview", "False"),
    PREVIEW_AWAITING: _row("InProgress", "Suspended", "Reconciling Progressing", "Preview", "False"),
    "Baking": _row(*IN_PROGRESS, "Baking", "False"),
    "Experiment": _row(*IN_PROGRESS, "Experiment", "False"),
    "Promoting": _row(*IN_PROGRESS, "Promoting", "False"),
    "Paused": _row("InProgress", "Suspended", "Reconciling", "Paused", "False"),
    "Succeeded": _row("Current", "Healthy", "Ready", "Succeeded", "True"),
    "RolledBack": _row("Failed", "Degraded", "Stalled Degraded", "RolledBack", "False"),
    "Blocked": _row("Failed", "Degraded", "Stalled Degraded", "Blocked", "False"),
    "Failed": _row("Failed", "Degraded", "Stalled Degraded", "Failed", "False"),
    REFUSED: _row("Failed", "Degraded", "Stalled InvalidSpec", "Succeeded", "False"),
}


def live_object(world: World, name: str = "recommender", namespace: str = "ml") -> dict[str, Any]:
    """The ModelRollout as the API server returns it: the world's spec at its generation, the planner's
    status, JSON types only."""
    obj = {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": name, "namespace": namespace, "generation": world.generation, "uid": "u-1"},
        "spec": world.spec.wire(),
        "status": world.status.wire(),
    }
    return dict(json.loads(json.dumps(obj)))


BLUE_GREEN: dict[str, Any] = {"blueGreen": {"bake": "20s"}}
EXPERIMENT: dict[str, Any] = {
    "experiment": {
        "assignment": {"header": "x-user-id"},
        "metric": {"successes": "model_conversions_total"},
        "minimumDetectableEffect": 0.1,
        "baselineRate": 0.1,
        "maxDuration": "1h",
    }
}


def _rolled_out(**overrides: Any) -> World:
    world = World(make_spec(**overrides))
    world.bootstrap()
    world.set_version("v2")
    return world


def _until(world: World, phase: str, limit: int = 200) -> World:
    world.run_until(lambda w: w.status.phase == phase, limit=limit)
    return world


def _pending() -> World:
    world = World(make_spec(gates=[{"name": "leakage", "webhook": {"url": "http://127.0.0.1:1/gate"}}]))
    world.gates = [GateResult("leakage", True, "ok")]
    world.bootstrap()
    world.gates = None  # the gate has not answered yet: nothing moves without it
    world.set_version("v2")
    world.tick()
    return world


def _awaiting(strategy: dict[str, Any] | None = None) -> World:
    spec = spec_dict()
    spec["strategy"] = {**(strategy or spec["strategy"]), "promotion": {"mode": "manual"}}
    world = World(ModelRolloutSpec.model_validate(spec))
    world.bootstrap()
    world.set_version("v2")
    world.run_until(lambda w: bool(w.status.history) and w.status.history[-1].reason == AWAITING_PROMOTION)
    return world


def _experiment() -> World:
    world = _rolled_out(strategy=EXPERIMENT)
    world.experiment = conversions(dict.fromkeys(["ios", "android", "default"], (0.1, 0.1)))
    return _until(world, "Experiment")


def _paused() -> World:
    world = _until(_rolled_out(), "Canary")
    world.commands = Commands(paused=True)
    world.tick()
    return world


def _rolled_back() -> World:
    world = _until(_rolled_out(), "Canary")
    world.script = lambda w: verdicts(w.spec, w.now, {"android": "Fail"})
    world.tick()
    return world


def _blocked() -> World:
    world = World(make_spec(gates=[{"name": "leakage", "webhook": {"url": "http://127.0.0.1:1/gate"}}]))
    world.gates = [GateResult("leakage", True, "ok")]
    world.bootstrap()
    world.set_version("v2")
    world.gates = [GateResult("leakage", False, "train/test leakage found in fold 3")]
    world.tick()
    return world


def _failed() -> World:
    world = World(make_spec())
    world.ready_cap["v1"] = 0  # the first version never loads
    return _until(world, "Failed", limit=30)


def _succeeded() -> World:
    world = _rolled_out()
    world.run_until(lambda w: (w.status.phase, w.status.stable_version) == ("Succeeded", "v2"))
    return world


def _not_observed() -> World:
    world = World(make_spec())
    world.bootstrap()
    world.set_version("v2")  # generation 2; the status still describes generation 1
    return world


def _refused() -> World:
    """What the controller does with a spec its models reject: `spec_refused`, the phase kept."""
    world = World(make_spec())
    world.bootstrap()
    world.generation += 1
    message = "spec.analysis.guards[0].max: Input should be a valid number"
    spec_refused(world.status, message, world.now, world.generation)
    return world


MAKERS: dict[str, Callable[[], World]] = {
    NOT_OBSERVED: _not_observed,
    "Pending": _pending,
    "Warming": lambda: _until(_rolled_out(), "Warming"),
    "Shadow": lambda: _until(_rolled_out(), "Shadow"),
    "Canary": lambda: _until(_rolled_out(), "Canary"),
    AWAITING: _awaiting,
    "Preview": lambda: _until(_rolled_out(strategy=BLUE_GREEN), "Preview"),
    PREVIEW_AWAITING: lambda: _awaiting(BLUE_GREEN),
    "Baking": lambda: _until(_rolled_out(strategy=BLUE_GREEN), "Baking"),
    "Experiment": _experiment,
    "Promoting": lambda: _until(_rolled_out(), "Promoting"),
    "Paused": _paused,
    "Succeeded": _succeeded,
    "RolledBack": _rolled_back,
    "Blocked": _blocked,
    "Failed": _failed,
    REFUSED: _refused,
}


def planner_states() -> dict[str, dict[str, Any]]:
    """One live object per row of the table, each made by the real planner (or the controller's refusal)."""
    states = {name: live_object(make()) for name, make in MAKERS.items()}
    fresh = live_object(World(make_spec()))
    fresh["status"] = dict(NEW_STATUS)  # the CRD's default: what the API server shows before the first tick
    states[NO_STATUS] = fresh
    return {name: states[name] for name in EXPECTED}


def state_of(obj: Mapping[str, Any]) -> str:
    """Which row of the table a live object is in."""
    status = obj.get("status") or {}
    conditions = {c["type"]: c for c in status.get("conditions") or []}
    if status.get("phase") is None and not conditions:
        return NO_STATUS
    if int(status.get("observedGeneration") or 0) < int(obj["metadata"]["generation"]):
        return NOT_OBSERVED
    if conditions.get("InvalidSpec", {}).get("status") == "True" and status.get("phase") != "Blocked":
        return REFUSED
    progressing = conditions.get("Progressing", {})
    if progressing.get("reason") == AWAITING_PROMOTION:
        return {"Canary": AWAITING, "Preview": PREVIEW_AWAITING}[str(status.get("phase"))]
    return str(status["phase"])


def true_conditions(obj: Mapping[str, Any]) -> frozenset[str]:
    """The conditions True for the object's generation (`kubectl wait` skips a condition whose
    observedGeneration is older than metadata.generation)."""
    status = obj.get("status") or {}
    generation = int(obj["metadata"]["generation"])
    return frozenset(
        c["type"]
        for c in status.get("conditions") or []
        if c["type"] in WAIT_CONDITIONS
        and c["status"] == "True"
        and int(c.get("observedGeneration", status.get("observedGeneration", generation))) >= generation
    )


def phases() -> frozenset[str]:
    return frozenset(get_args(Phase))


def docs_table() -> dict[str, Expected]:
    """The table in docs/operations.md, parsed: state -> what each tool reads."""
    text = DOCS.read_text()
    start = text.index(TABLE_HEADING)
    rows: dict[str, Expected] = {}
    for line in text[start:].splitlines()[1:]:
        if rows and not line.startswith("|"):
            break
        if not line.startswith("|") or set(line) <= {"|", "-", " "} or line.startswith("| state"):
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        state, kstatus, argocd, wait, columns = cells
        phase_column, ready_column = (c.strip() for c in columns.split("/"))
        rows[_plain(state)] = Expected(
            kstatus=_plain(kstatus),
            argocd=_plain(argocd),
            wait=frozenset(_plain(w) for w in wait.split(",") if _plain(w) not in ("", "none")),
            phase_column=_plain(phase_column),
            ready_column=_plain(ready_column),
        )
    return rows


def _plain(cell: str) -> str:
    """A table cell without markdown: `code`, **bold**."""
    return re.sub(r"[`*]", "", cell).strip()
