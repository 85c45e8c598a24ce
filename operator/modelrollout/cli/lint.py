"""`kubectl modelrollout lint`: offline checks of ModelRollout manifests, before they reach a cluster.

Two kinds of findings:
- errors: what admission (CRD schema and CEL rules, the same pydantic models) refuses, and specs admission
  accepts but that can never complete (a slice no request can reach, a phase no guard judges, a template the
  operator cannot turn into pods);
- warnings: specs that work but not the way their author probably meant (too few samples for PSI, a step
  shorter than two evaluations, a guard that is never active, rollback safety that cannot be checked).

Each finding names the file, the document's 1-based position in the file, and the field path.
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from modelrollout.analysis.distributions import psi_noise_floor
from modelrollout.analysis.queries import LATENCY_QUANTILES, window_seconds
from modelrollout.api.common import seconds
from modelrollout.api.guards import COMPARATIVE_METRICS, Guard
from modelrollout.api.matching import StringMatch
from modelrollout.api.spec import ModelRolloutSpec
from modelrollout.api.validation import lint_spec
from modelrollout.cli.lint_experiment import experiment_issues
from modelrollout.identity import GROUP, KIND, MAX_NAME, NAME_TOO_LONG, VERSION
from modelrollout.serving.metrics import SCORE_BUCKETS
from modelrollout.workloads.render import fingerprint

Severity = Literal["error", "warning"]
PSI_BUCKETS = len(SCORE_BUCKETS)
"""Buckets of the score histogram modelrollout.serving exports (the `modelrollout` metrics profile)."""
PER_BUCKET = 10
"""Observations per bucket, on average, below which PSI is mostly sampling noise."""
RELATIVE_BOUNDS = ("maxRatioToStable", "maxDeltaToStable", "minRatioToStable", "minDeltaToStable")


@dataclass(frozen=True)
class Finding:
    file: str
    document: int
    """1-based position of the YAML document in its file; 0 for the file itself."""
    severity: Severity
    path: str
    message: str
    name: str | None = None
    """metadata.name of the ModelRollout, when it has one."""

    def line(self) -> str:
        where = f"{self.file}:{self.document}" if self.document else self.file
        path = f"{self.path}: " if self.path else ""
        return f"{where}: {self.severity}: {path}{self.message}"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# Semantic checks on a spec that passed admission ---------------------------------------------------------------
Issue = tuple[Severity, str, str]


def _covers(earlier: StringMatch, later: StringMatch) -> bool:
    """Whether every value `later` matches is also matched by `earlier` (decidable cases only)."""
    if earlier.exact is not None:
        return later.exact == earlier.exact
    if earlier.prefix is not None:
        if later.exact is not None:
            return later.exact.startswith(earlier.prefix)
        if later.prefix is not None:
            return later.prefix.startswith(earlier.prefix)
        return False
    if earlier.regex is not None:
        if later.regex is not None:
            return later.regex == earlier.regex
        if later.exact is not None:
            try:
                return re.fullmatch(earlier.regex, later.exact) is not None
            except re.error:
                return False
    return False


def _describe_match(match: StringMatch) -> str:
    if match.exact is not None:
        return f"exact {match.exact!r}"
    if match.prefix is not None:
        return f"prefix {match.prefix!r}"
    return f"regex {match.regex!r}"


def _slices(spec: ModelRolloutSpec) -> Iterator[Issue]:
    for index, item in enumerate(spec.slices):
        for header, match in item.match.headers.items():
            if match.regex is not None:
                try:
                    re.compile(match.regex)
                except re.error as error:
                    yield (
                        "warning",
                        f"spec.slices[{index}].match.headers.{header}.regex",
                        f"{match.regex!r} is not a valid regular expression ({error}); Istio (RE2) will "
                        "refuse the VirtualService if it is not valid RE2 either",
                    )
        for before_index, before in enumerate(spec.slices[:index]):
            headers = before.match.headers
            if all(
                name in item.match.headers and _covers(value, item.match.headers[name])
                for name, value in headers.items()
            ):
                same = headers.keys() == item.match.headers.keys() and all(
                    headers[k] == item.match.headers[k] for k in headers
                )
                how = (
                    "has exactly the same header match as"
                    if same
                    else "only matches requests already matched by"
                )
                wanted = ", ".join(f"{k} {_describe_match(v)}" for k, v in headers.items())
                yield (
                    "error",
                    f"spec.slices[{index}].match",
                    f"slice {item.name} is unreachable: it {how} the earlier slice {before.name} "
                    f"(spec.slices[{before_index}]: {wanted}), "
                    "and routes match in order; it gets no traffic, so its verdict stays Inconclusive and "
                    "the rollout never completes. Put the more specific slice first",
                )
                break


def _phases(spec: ModelRolloutSpec) -> Iterator[Issue]:
    has_shadow = spec.strategy.shadow is not None
    for index, guard in enumerate(spec.analysis.guards):
        if not has_shadow and guard.phases == ["shadow"]:
            yield (
                "warning",
                f"spec.analysis.guards[{index}].phases",
                f"guard {guard.name} is judged only in shadow, but spec.strategy.shadow is not set: "
                "it is never active",
            )
    judged = {phase for guard in spec.analysis.guards for phase in guard.phases}
    needed = ["shadow", "canary"] if has_shadow else ["canary"]
    live = {"canary": "canary", "blueGreen": "the blue-green bake", "experiment": "the A/B experiment"}
    stage = {"shadow": "shadow", "canary": live[spec.strategy.name]}
    for phase in needed:
        if phase not in judged:
            yield (
                "error",
                "spec.analysis.guards",
                f"no guard is judged in {stage[phase]}: every slice stays Inconclusive there, so the rollout "
                f"never gets past it; add {phase!r} to a guard's phases",
            )


def _min_samples(spec: ModelRolloutSpec, index: int, guard: Guard) -> Iterator[tuple[str, int]]:
    """(field path, value) of every minSamples that applies to some slice of this guard."""
    if guard.min_samples is not None:
        base = (f"spec.analysis.guards[{index}].minSamples", guard.min_samples)
    else:
        base = ("spec.analysis.minSamples", spec.analysis.min_samples)
    overridden = {name for name, override in guard.slices.items() if override.min_samples is not None}
    if any(name not in overridden for name in spec.slice_names()):
        yield base
    for name, override in guard.slices.items():
        if override.min_samples is not None:
            yield f"spec.analysis.guards[{index}].slices.{name}.minSamples", override.min_samples


def _guards(spec: ModelRolloutSpec) -> Iterator[Issue]:
    wanted = PSI_BUCKETS * PER_BUCKET
    for index, guard in enumerate(spec.analysis.guards):
        if guard.metric in COMPARATIVE_METRICS and guard.query is None:
            for name in ["", *guard.slices]:
                limits = guard.thresholds_for(name) if name else guard
                bounds = limits.bounds()
                field = next((f for f in RELATIVE_BOUNDS if bounds[f] is not None), None)
                if field is not None:
                    where = f".slices.{name}" if name else ""
                    yield (
                        "error",
                        f"spec.analysis.guards[{index}]{where}.{field}",
                        f"{guard.metric} already compares the candidate with stable: a bound relative to "
                        "stable is never judged (always Inconclusive); use max",
                    )
        if guard.metric == "predictionPSI" and guard.query is None:
            reported: set[str] = set()
            for path, count in _min_samples(spec, index, guard):
                if count >= wanted or path in reported:
                    continue
                reported.add(path)
                floor = psi_noise_floor(PSI_BUCKETS, count, count)
                spread = math.sqrt(2 * (PSI_BUCKETS - 1)) * 2 / count
                bound = f", against max {guard.max:g}" if guard.max is not None else ""
                yield (
                    "warning",
                    path,
                    f"{count} samples is too few for {guard.name} (predictionPSI): the score histogram has "
                    f"{PSI_BUCKETS} buckets, about {count / PSI_BUCKETS:.3g} observations each, and at {count} "
                    f"per version PSI from sampling noise alone varies by about ±{spread:.2g} around "
                    f"{floor:.2g}{bound}. Use at least {wanted}",
                )


def _triggers(spec: ModelRolloutSpec) -> Iterator[Issue]:
    """Guards whose trigger cannot work as written: labels in shadow, a `for` under one interval, a pause
    that pages nobody."""
    interval = seconds(spec.analysis.interval)
    for index, guard in enumerate(spec.analysis.guards):
        where = f"spec.analysis.guards[{index}]"
        if guard.metric == "accuracy" and guard.query is None and "shadow" in guard.phases:
            yield (
                "warning",
                f"{where}.phases",
                f"guard {guard.name} (accuracy) is judged in shadow, but a mirrored answer is discarded by the "
                "mesh, so no label ever comes back for it: the guard stays Inconclusive there and holds the "
                "shadow phase; use phases: [canary]",
            )
        duration = guard.failing_for_seconds()
        if duration is not None and duration < interval:
            yield (
                "warning",
                f"{where}.for",
                f"{guard.failing_for} is shorter than interval {spec.analysis.interval}: the guard acts after "
                f"failureLimit ({guard.failure_limit}) failing evaluations, whatever for says",
            )
        if guard.action == "pause" and not spec.rollback.notify:
            yield (
                "warning",
                f"{where}.action",
                f"guard {guard.name} pauses the rollout for a person to decide, but spec.rollback.notify is "
                "empty: nobody is paged, and the candidate waits until someone looks",
            )


def _readiness(spec: ModelRolloutSpec) -> Iterator[Issue]:
    readiness = spec.readiness
    if seconds(readiness.load_timeout) < seconds(readiness.probe_period):
        yield (
            "warning",
            "spec.readiness.loadTimeout",
            f"{readiness.load_timeout} is shorter than probePeriod {readiness.probe_period}: the model gets a "
            "single startup probe to be ready",
        )


def _window(spec: ModelRolloutSpec) -> Iterator[Issue]:
    interval = seconds(spec.analysis.interval)
    if spec.analysis.window is not None and seconds(spec.analysis.window) < interval:
        yield (
            "warning",
            "spec.analysis.window",
            f"window {spec.analysis.window} is shorter than interval {spec.analysis.interval}: requests "
            "between two windows are never judged (a burst of errors can go unseen)",
        )


def _inconclusive_budget(spec: ModelRolloutSpec) -> Iterator[Issue]:
    """Histogram guards are Inconclusive until a full window has passed in each stage; with onInconclusive
    fail, fewer evaluations than that roll a healthy candidate back at the start of every step."""
    analysis = spec.analysis
    if analysis.on_inconclusive != "fail":
        return
    window, interval = window_seconds(spec), seconds(analysis.interval)
    waits = math.ceil(window / interval)
    for guard in analysis.guards:
        histogram = guard.query is None and guard.metric in (
            *LATENCY_QUANTILES,
            "predictionPSI",
            "predictionKS",
        )
        if histogram and analysis.max_inconclusive <= waits:
            yield (
                "warning",
                "spec.analysis.maxInconclusive",
                f"{analysis.max_inconclusive} is not more than the {waits} evaluations guard {guard.name} "
                f"({guard.metric}) stays Inconclusive while its {window:g}s window fills at the start of each "
                f"stage (interval {analysis.interval}): with onInconclusive fail every step rolls back; "
                f"use at least {waits + 1}",
            )
            return


def _strategy(spec: ModelRolloutSpec) -> Iterator[Issue]:
    interval = seconds(spec.analysis.interval)
    two = f"two analysis intervals (2 x {spec.analysis.interval})"
    shadow = spec.strategy.shadow
    if shadow is not None and seconds(shadow.duration) < 2 * interval:
        yield (
            "warning",
            "spec.strategy.shadow.duration",
            f"{shadow.duration} is shorter than {two}: shadow can never collect two evaluations and ends "
            "after a single passing one",
        )
    for index, step in enumerate(spec.strategy.steps()):
        if seconds(step.pause) < 2 * interval:
            yield (
                "warning",
                f"spec.strategy.canary.steps[{index}].pause",
                f"{step.pause} is shorter than {two}: step {index + 1} ({step.weight}%) can never collect "
                "two evaluations and advances after a single passing one",
            )
    blue_green = spec.strategy.blue_green
    if blue_green is not None and seconds(blue_green.bake) < 2 * interval:
        yield (
            "warning",
            "spec.strategy.blueGreen.bake",
            f"{blue_green.bake} is shorter than {two}: the bake can never collect two evaluations and the "
            "candidate becomes stable after a single passing one",
        )


def _safety(spec: ModelRolloutSpec) -> Iterator[Issue]:
    if spec.model.serving_schema is None:
        policy = spec.rollback.rollback_safety
        yield (
            "warning",
            "spec.model.schema",
            f"no serving schema: rollback safety (rollbackSafety: {policy}) cannot be checked, so a rollback "
            "to a version that cannot read the candidate's requests is not caught",
        )


def _template(spec: ModelRolloutSpec) -> Iterator[Issue]:
    try:
        fingerprint(spec, spec.model.version, spec.model.uri)
    except ValueError as error:
        path, sep, message = str(error).partition(": ")
        if not sep:
            path, message = "spec.template", str(error)
        yield "error", path, f"{message} (the operator would block the rollout with InvalidTemplate)"


def semantic_issues(spec: ModelRolloutSpec) -> list[Issue]:
    """Findings beyond admission for a spec the API server would accept, in field order."""
    issues: list[Issue] = []
    checks = (
        _safety,
        _template,
        _readiness,
        _slices,
        _strategy,
        experiment_issues,
        _window,
        _inconclusive_budget,
        _phases,
        _guards,
        _triggers,
    )
    for check in checks:
        issues.extend(check(spec))
    return issues


# Documents and files -------------------------------------------------------------------------------------------
def _is_rollout(document: Any) -> bool:
    if not isinstance(document, dict) or document.get("kind") != KIND:
        return False
    api_version = str(document.get("apiVersion", ""))
    return api_version.split("/", 1)[0] == GROUP


def lint_document(document: dict[str, Any], file: str, index: int) -> list[Finding]:
    meta = document.get("metadata")
    name = meta.get("name") if isinstance(meta, dict) else None
    name = name if isinstance(name, str) else None

    def finding(severity: Severity, path: str, message: str) -> Finding:
        return Finding(file, index, severity, path, message, name)

    found: list[Finding] = []
    api_version = str(document.get("apiVersion"))
    if api_version != f"{GROUP}/{VERSION}":
        found.append(finding("error", "apiVersion", f"{api_version} is not served; use {GROUP}/{VERSION}"))
    if not isinstance(meta, dict) or not (meta.get("name") or meta.get("generateName")):
        found.append(finding("error", "metadata.name", "required"))
    elif name is not None and len(name) > MAX_NAME:
        found.append(finding("error", "metadata.name", NAME_TOO_LONG))
    spec = document.get("spec")
    if not isinstance(spec, dict):
        found.append(finding("error", "spec", "required: an object"))
        return found
    problems = lint_spec(spec)
    for line in problems:
        path, _, message = line.partition(": ")
        found.append(finding("error", path, message))
    if not problems:
        parsed = ModelRolloutSpec.model_validate(spec)
        found += [finding(severity, path, message) for severity, path, message in semantic_issues(parsed)]
    return found


def lint_text(text: str, file: str) -> tuple[list[Finding], int]:
    """Findings of every ModelRollout document in a YAML stream, and how many ModelRollouts it held."""
    found: list[Finding] = []
    rollouts = 0
    index = 0
    documents = yaml.safe_load_all(text)
    while True:
        try:
            document = next(documents)
        except StopIteration:
            break
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
            problem = getattr(error, "problem", None) or str(error)
            found.append(Finding(file, index + 1, "error", "", f"invalid YAML: {problem}{where}"))
            break
        index += 1
        if _is_rollout(document):
            rollouts += 1
            found += lint_document(document, file, index)
    return found, rollouts


def lint_files(paths: list[str]) -> tuple[list[Finding], int]:
    """Findings for every file ('-' reads standard input), and the number of ModelRollouts checked."""
    found: list[Finding] = []
    total = 0
    for path in paths:
        try:
            text = sys.stdin.read() if path == "-" else Path(path).read_text()
        except (OSError, UnicodeDecodeError) as error:
            reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
            found.append(Finding(path, 0, "error", "", f"cannot read: {reason}"))
            continue
        file_findings, count = lint_text(text, path)
        found += file_findings
        total += count
    if total == 0 and not found:
        # Other kinds are skipped quietly (a folder of manifests is fine), but nothing at all to check is
        # almost always the wrong file.
        found.append(Finding(", ".join(paths), 0, "error", "", f"no {KIND} documents ({GROUP}) found"))
    return found, total
