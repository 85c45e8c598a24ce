"""How `kubectl modelrollout status` shows a ModelRollout: pure functions from the stored object to text.

Everything is computed from the object as the API server returns it (a dict) and an explicit `now`, so the
same object always renders the same way; the command only decides where it goes (a terminal with colours and
boxes, or plain text for pipes and logs).
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from rich import box
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from modelrollout.api import commands
from modelrollout.api.spec import ModelRolloutSpec
from modelrollout.api.status import (
    TERMINAL,
    Decision,
    Fingerprint,
    GuardVerdict,
    ModelRolloutStatus,
    SliceStatus,
    VersionRecord,
)
from modelrollout.api.validation import describe
from modelrollout.cli.view_strategies import experiment_lines, qa_text, strategy_line, switch_text

PLAIN_WIDTH = 200
_PHASE_STYLE = {
    "Succeeded": "bold green",
    "RolledBack": "bold red",
    "Failed": "bold red",
    "Blocked": "bold red",
    "Paused": "bold yellow",
}
_VERDICT_STYLE = {"Pass": "green", "Fail": "bold red", "Inconclusive": "yellow"}
_CONDITION_STYLE = {"True": "green", "False": "red", "Unknown": "yellow"}


# Small formatters ------------------------------------------------------------------------------------------
def age(seconds: float) -> str:
    """A duration the way kubectl prints ages: 45s, 3m20s, 5h10m, 2d4h."""
    total = max(0, int(seconds))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h{minutes}m" if minutes else f"{hours}h"
    if minutes:
        return f"{minutes}m{secs}s" if secs else f"{minutes}m"
    return f"{secs}s"


def since(moment: datetime | None, now: datetime) -> str:
    return "-" if moment is None else age((now - moment).total_seconds())


def number(value: float | None) -> str:
    """A metric value in a table cell: four significant digits; missing is '-'."""
    if value is None:
        return "-"
    if math.isnan(value):
        return "NaN"
    return f"{value:.4g}"


def short_image(image: str) -> str:
    """The last path part of an image reference, with a digest cut to 12 hex digits."""
    name = image.rsplit("/", 1)[-1]
    repo, at, digest = name.partition("@")
    if at:
        algorithm, _, value = digest.partition(":")
        return f"{repo}@{algorithm}:{value[:12]}"
    return name


def short_fingerprint(printed: Fingerprint | None) -> str:
    """One line: template hash (12 characters), images and the declared environment."""
    if printed is None:
        return ""
    parts = []
    if printed.template_hash:
        parts.append(f"fingerprint {printed.template_hash[:12]}")
    if printed.images:
        parts.append("images " + ",".join(short_image(i) for i in printed.images))
    if printed.environment:
        parts.append(f"env {printed.environment}")
    return "  ".join(parts)


def threshold(guard: GuardVerdict) -> str:
    """The bound a guard's value was held to, e.g. '<= 0.05 (max)' or '>= 0.9 (min)'."""
    if guard.threshold is None:
        return guard.bound or "-"
    op = ">=" if guard.bound == "min" else "<="
    named = f" ({guard.bound})" if guard.bound else ""
    return f"{op} {number(guard.threshold)}{named}"


def values(guard: GuardVerdict) -> str:
    return f"{number(guard.stable)} → {number(guard.canary)}"


def _styled(value: str, style: str | None) -> Text:
    return Text(value, style=style or "")


# The parsed object -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Rollout:
    """The parts of a stored ModelRollout the views need; problems reading it are kept, not raised."""

    name: str
    namespace: str
    generation: int | None
    spec: ModelRolloutSpec | None
    status: ModelRolloutStatus
    problems: list[str]
    annotations: dict[str, str]

    @property
    def phase(self) -> str | None:
        return self.status.phase

    @property
    def current(self) -> bool:
        """Whether the status describes the latest spec (the operator has seen the last spec change)."""
        observed = self.status.observed_generation
        return observed is not None and (self.generation is None or observed >= self.generation)

    @property
    def finished(self) -> bool:
        """A terminal phase that belongs to the latest spec: nothing more will happen on its own."""
        return self.current and self.phase in TERMINAL

    def steps(self) -> int | None:
        return len(self.spec.strategy.steps()) if self.spec else None


def parse(body: dict[str, Any]) -> Rollout:
    meta = body.get("metadata") or {}
    problems: list[str] = []
    spec: ModelRolloutSpec | None = None
    try:
        spec = ModelRolloutSpec.model_validate(body.get("spec") or {})
    except ValidationError as error:
        problems.append(f"the spec is invalid: {describe(error, prefix='spec')}")
    try:
        status = ModelRolloutStatus.model_validate(body.get("status") or {})
    except ValidationError as error:
        problems.append(f"the status cannot be read by this plugin: {describe(error, prefix='status')}")
        raw = body.get("status") or {}
        status = ModelRolloutStatus(message=str(raw.get("message", "")))
    generation = meta.get("generation")
    return Rollout(
        name=str(meta.get("name", "")),
        namespace=str(meta.get("namespace", "")),
        generation=int(generation) if generation is not None else None,
        spec=spec,
        status=status,
        problems=problems,
        annotations={str(k): str(v) for k, v in (meta.get("annotations") or {}).items()},
    )


# Sections -----------------------------------------------------------------------------------------------------
def _table(plain: bool, title: str | None = None) -> Table:
    return Table(
        title=title,
        title_justify="left",
        title_style="bold" if not plain else "",
        box=None if plain else box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        header_style="bold" if not plain else "",
        padding=(0, 2, 0, 0) if plain else (0, 1),
    )


def _version_line(record: VersionRecord | None, version: str | None) -> str:
    if version is None and record is None:
        return "-"
    name = version or (record.version if record else "-")
    parts = [name]
    if record is not None:
        if record.uri:
            parts.append(record.uri)
        printed = short_fingerprint(record.fingerprint)
        if printed:
            parts.append(printed)
        if record.serving_schema is not None:
            parts.append(f"schema v{record.serving_schema.version}")
    return "  ".join(parts)


def _phase_text(rollout: Rollout, now: datetime) -> Text:
    s = rollout.status
    if s.phase is None:
        return Text("- (no status yet: the operator has not reconciled this rollout)")
    text = _styled(s.phase, _PHASE_STYLE.get(s.phase))
    if s.phase == "Paused" and s.paused_phase:
        text.append(f" (in {s.paused_phase})")
    if s.phase_since is not None:
        text.append(f" for {since(s.phase_since, now)}")
    return text


def _step_text(rollout: Rollout) -> str:
    s = rollout.status
    total = rollout.steps()
    if s.step == 0:
        return "- (before the canary)" if s.phase in ("Pending", "Warming", "Shadow") else "-"
    of = f"/{total}" if total is not None else ""
    routed = s.paused_phase if s.phase == "Paused" else s.phase
    if routed not in ("Canary", "Promoting"):
        return f"reached {s.step}{of}; weight now {s.canary_weight}%"
    text = f"{s.step}{of}, weight {s.canary_weight}% of every slice"
    if routed == "Canary" and rollout.spec is not None and s.step <= len(rollout.spec.strategy.steps()):
        target = rollout.spec.strategy.steps()[s.step - 1].weight
        if target != s.canary_weight:
            text += f" (step weight {target}%, held by candidate capacity)"
    return text


def _commands(rollout: Rollout) -> str:
    """Command annotations the status does not reflect yet (or, for pause, that hold the rollout)."""
    s, notes = rollout.status, rollout.annotations
    found = []
    if commands.is_paused(notes):
        found.append("paused" if s.phase == "Paused" else "pause requested (not in effect yet)")
    promote, _ = commands.promote_id(notes)
    if promote and promote != s.acknowledged.promote:
        found.append(f"promote {promote} not acknowledged yet")
    abort = commands.abort_id(notes)
    if abort and abort != s.acknowledged.abort:
        found.append(f"abort {abort} not acknowledged yet")
    return "; ".join(found)


def _summary(rollout: Rollout, now: datetime, plain: bool) -> Table:
    s = rollout.status
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="" if plain else "bold")
    grid.add_column()
    grid.add_row("Phase", _phase_text(rollout, now))
    if s.observed_generation is not None and rollout.generation is not None and not rollout.current:
        grid.add_row(
            "Observed",
            f"generation {s.observed_generation} of {rollout.generation} "
            "(the operator has not acted on the latest spec yet)",
        )
    grid.add_row("Stable", _version_line(s.stable, s.stable_version))
    grid.add_row("Candidate", _version_line(s.candidate, s.candidate_version))
    if s.previous_version or s.previous:
        previous = _version_line(s.previous, s.previous_version)
        if s.previous_warm_until is not None:
            left = (s.previous_warm_until - now).total_seconds()
            when = s.previous_warm_until.strftime("%Y-%m-%dT%H:%M:%SZ")
            previous += (
                f"  (kept warm until {when}, {age(left)} left: `undo` is fast)"
                if left > 0
                else f"  (scaled down at {when})"
            )
        grid.add_row("Previous", previous)
    grid.add_row("Strategy", strategy_line(rollout))
    if rollout.spec is not None and rollout.spec.strategy.blue_green is not None:
        grid.add_row("Switch", switch_text(rollout, now))
    elif rollout.spec is not None and rollout.spec.strategy.experiment is not None:
        for label, text in experiment_lines(rollout):
            grid.add_row(label, text)
    else:
        grid.add_row("Step", _step_text(rollout))
    qa = qa_text(rollout)
    if qa is not None:
        grid.add_row("QA route", qa)
    mirror = (
        f"{s.mirror_percent:g}% of every slice to {s.candidate_version}" if s.mirror_percent > 0 else "off"
    )
    grid.add_row("Mirror", mirror)
    pending = _commands(rollout)
    if pending:
        grid.add_row("Commands", pending)
    if s.slices:
        failing = _styled(
            f"{s.failing_slices} of {len(s.slices)} slices", "bold red" if s.failing_slices else ""
        )
        grid.add_row("Failing", failing)
    if s.last_analysis is not None:
        grid.add_row("Analysis", f"last {since(s.last_analysis, now)} ago")
    if s.inconclusive_count:
        grid.add_row("Inconclusive", f"{s.inconclusive_count} evaluations in this stage")
    if s.candidate_scale_down_at is not None and s.phase == "RolledBack":
        left = (s.candidate_scale_down_at - now).total_seconds()
        grid.add_row(
            "Inspect",
            f"{s.candidate_version or 'the candidate'} stays up for {age(left)} for inspection"
            if left > 0
            else "the rolled-back candidate has been scaled down",
        )
    return grid


def _slices(slices: list[SliceStatus], plain: bool) -> Table:
    table = _table(plain, "Slices")
    for header in ("SLICE", "WEIGHT", "VERDICT", "SAMPLES S/C"):
        table.add_column(header, no_wrap=True)
    for header in ("GUARD", "STABLE → CANARY", "THRESHOLD", "RESULT"):
        table.add_column(header, no_wrap=True)
    table.add_column("REASON", overflow="fold")
    for item in slices:
        head = [
            Text(item.name),
            Text(f"{item.canary_weight}%"),
            _styled(item.verdict or "-", _VERDICT_STYLE.get(item.verdict or "")),
            Text(f"{item.samples.stable}/{item.samples.canary}"),
        ]
        if not item.guards:
            table.add_row(*head, Text("-"), Text(""), Text(""), Text(""), Text(""))
            continue
        for index, guard in enumerate(item.guards):
            cells = head if index == 0 else [Text("")] * 4
            failures = f" ({guard.failures}x this stage)" if guard.failures > 1 else ""
            table.add_row(
                *cells,
                Text(guard.name),
                Text(values(guard)),
                Text(threshold(guard)),
                _styled(guard.verdict + failures, _VERDICT_STYLE.get(guard.verdict)),
                Text(guard.reason),
            )
    return table


def _conditions(rollout: Rollout, now: datetime, plain: bool) -> Table:
    table = _table(plain, "Conditions")
    for header in ("TYPE", "STATUS", "REASON", "AGE"):
        table.add_column(header, no_wrap=True)
    table.add_column("MESSAGE", overflow="fold")
    for condition in rollout.status.conditions:
        table.add_row(
            condition.type,
            _styled(condition.status, _CONDITION_STYLE.get(condition.status)),
            condition.reason,
            since(condition.last_transition_time, now),
            condition.message,
        )
    return table


def evidence_line(guard: GuardVerdict) -> str:
    return f"{guard.name}: {values(guard)} vs {threshold(guard)}: {guard.verdict}: {guard.reason}"


def _history(decisions: list[Decision], now: datetime, plain: bool, total: int) -> Table:
    shown = f"last {len(decisions)} of {total}" if total > len(decisions) else f"{total}"
    table = _table(plain, f"History ({shown}, newest last)")
    for header in ("AGE", "PHASE", "REASON", "STEP", "WEIGHT"):
        table.add_column(header, no_wrap=True)
    table.add_column("MESSAGE / EVIDENCE", overflow="fold")
    for decision in decisions:
        table.add_row(
            since(decision.time, now),
            _styled(decision.phase, _PHASE_STYLE.get(decision.phase)),
            decision.reason,
            str(decision.step) if decision.step else "-",
            f"{decision.weight}%" if decision.weight is not None else "-",
            decision.message,
        )
        for guard in decision.evidence:
            table.add_row(
                "", "", "", "", "", Text("↳ " + evidence_line(guard), style="dim" if not plain else "")
            )
    return table


def build(body: dict[str, Any], now: datetime, *, plain: bool = False, history: int = 5) -> RenderableType:
    """The whole status view as rich renderables."""
    rollout = parse(body)
    s = rollout.status
    parts: list[RenderableType] = [
        Text(f"ModelRollout {rollout.namespace}/{rollout.name}", style="" if plain else "bold"),
        _summary(rollout, now, plain),
    ]
    for problem in rollout.problems:
        parts.append(Text(f"Warning: {problem}", style="" if plain else "bold yellow"))
    if s.slices:
        parts += [Text(""), _slices(s.slices, plain)]
    elif s.phase is not None:
        parts += [Text(""), Text("Slices: no analysis in this phase yet")]
    if s.conditions:
        parts += [Text(""), _conditions(rollout, now, plain)]
    if s.history and history > 0:
        parts += [Text(""), _history(s.history[-history:], now, plain, len(s.history))]
    parts += [Text(""), Text.assemble(("Message: ", "" if plain else "bold"), s.message or "-")]
    return Group(*parts)


def render_text(body: dict[str, Any], now: datetime, *, width: int = PLAIN_WIDTH, history: int = 5) -> str:
    """The status view as plain text (no colours, no boxes, no trailing spaces), for pipes and logs."""
    buffer = io.StringIO()
    console = Console(
        file=buffer,
        width=width,
        no_color=True,
        color_system=None,
        force_terminal=False,
        highlight=False,
        emoji=False,
        markup=False,
    )
    console.print(build(body, now, plain=True, history=history))
    return "\n".join(line.rstrip() for line in buffer.getvalue().splitlines()) + "\n"
