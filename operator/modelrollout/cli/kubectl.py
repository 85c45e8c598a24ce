"""`kubectl modelrollout`: see and steer ModelRollouts (status, promote, abort, pause, resume, undo, lint).

Installed as the console script `kubectl-modelrollout`, which kubectl finds on PATH as a plugin. It follows
kubectl's habits: -n/--namespace, --kubeconfig and --context anywhere on the line, -o json|yaml where the
output is data, messages naming the object and the cause on stderr, and exit codes 0 (ok), 1 (failed) and
2 (usage). Commands are annotations the operator acts on (see modelrollout.api.commands); nothing here
changes the spec except `undo`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TextIO

import yaml
from rich.console import Console
from rich.live import Live

from modelrollout import __version__
from modelrollout.api import commands
from modelrollout.api import status as phases
from modelrollout.api.common import seconds
from modelrollout.cli import lint as linting
from modelrollout.cli import view
from modelrollout.identity import API_VERSION
from modelrollout.kube import KubeApi, KubeError, connect, default_namespace

PROG = "kubectl modelrollout"
OK, FAILED, USAGE, INTERRUPTED = 0, 1, 2, 130
POLL_SECONDS = 0.5
WATCH_POLL_SECONDS = 2.0
DEFAULT_WAIT = "60s"
GIT_TRACKING = ("argocd.argoproj.io/tracking-id", "argocd.argoproj.io/instance")


class CommandError(Exception):
    """A failure to report on stderr as `error: ...` with an exit code."""

    def __init__(self, message: str, code: int = FAILED) -> None:
        super().__init__(message)
        self.code = code


def _duration(value: str) -> float:
    """A timeout: a duration such as 90s or 2m, or plain seconds."""
    try:
        return float(value)
    except ValueError:
        pass
    try:
        return seconds(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid duration {value!r}: use a number of seconds or e.g. 30s, 2m, 1m30s"
        ) from None


def new_command_id(now: datetime | None = None) -> str:
    """An RFC 3339 UTC timestamp with a random suffix, e.g. 2026-11-21T12:00:00Z-3fa9c1."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return f"{moment.strftime('%Y-%m-%dT%H:%M:%SZ')}-{secrets.token_hex(3)}"


def _who(name: str, namespace: str) -> str:
    return f'modelrollout "{name}" in namespace "{namespace}"'


def _not_found(name: str, namespace: str) -> CommandError:
    return CommandError(f'modelrollout "{name}" not found in namespace "{namespace}"')


# Talking to the cluster -------------------------------------------------------------------------------------
class Session:
    """One command's view of the cluster: the Kube client, the namespace and the output streams."""

    def __init__(self, kube: KubeApi, namespace: str, out: TextIO, err: TextIO) -> None:
        self.kube = kube
        self.namespace = namespace
        self.out = out
        self.err = err

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def warn(self, text: str) -> None:
        print(f"warning: {text}", file=self.err, flush=True)

    async def get(self, name: str) -> dict[str, Any]:
        body = await self.kube.get_rollout(self.namespace, name)
        if body is None:
            raise _not_found(name, self.namespace)
        return body

    async def patch(self, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        try:
            return await self.kube.patch_rollout(self.namespace, name, patch)
        except KubeError as error:
            if error.not_found:
                raise _not_found(name, self.namespace) from None
            if error.conflict:
                raise CommandError(
                    f"{_who(name, self.namespace)} changed while this command ran; run it again"
                ) from None
            raise

    async def annotate(self, name: str, values: dict[str, str | None]) -> dict[str, Any]:
        """Merge-patches metadata.annotations; None removes an annotation."""
        return await self.patch(name, {"metadata": {"annotations": values}})

    async def wait(
        self,
        name: str,
        done: Callable[[view.Rollout], bool],
        within: float,
        waiting_for: str,
    ) -> view.Rollout:
        deadline = time.monotonic() + within
        while True:
            rollout = view.parse(await self.get(name))
            if done(rollout):
                return rollout
            if time.monotonic() >= deadline:
                raise CommandError(
                    f"timed out after {within:g}s waiting for {waiting_for} on {_who(name, self.namespace)} "
                    f"(phase {rollout.phase or 'not set'}; is the operator running?)"
                )
            await asyncio.sleep(POLL_SECONDS)


def _position(rollout: view.Rollout) -> str:
    s = rollout.status
    parts = [f"phase {s.phase or '-'}"]
    if s.phase == "Paused" and s.paused_phase:
        parts[0] += f" (in {s.paused_phase})"
    if s.step:
        total = rollout.steps()
        parts.append(f"step {s.step}/{total}" if total else f"step {s.step}")
    if s.canary_weight:
        parts.append(f"weight {s.canary_weight}%")
    if s.mirror_percent:
        parts.append(f"mirror {s.mirror_percent:g}%")
    text = ", ".join(parts)
    return f"{text}: {s.message}" if s.message else text


# status --------------------------------------------------------------------------------------------------------
def _dump(body: dict[str, Any], output: str) -> str:
    if output == "json":
        return json.dumps(body, indent=2, sort_keys=False) + "\n"
    return yaml.safe_dump(body, sort_keys=False, width=120)


def _exit_for(rollout: view.Rollout) -> int:
    return OK if rollout.phase == "Succeeded" else FAILED


async def _status(session: Session, args: argparse.Namespace) -> int:
    body = await session.get(args.name)
    now = datetime.now(UTC)
    tty = session.out.isatty()
    if not args.watch:
        if args.output:
            session.out.write(_dump(body, args.output))
        elif tty:
            Console(file=session.out, highlight=False).print(view.build(body, now, history=args.history))
        else:
            session.out.write(view.render_text(body, now, history=args.history))
        return OK
    if tty and not args.output:
        return await _watch_live(session, args, body)
    return await _watch_lines(session, args, body)


def _watch_deadline(args: argparse.Namespace) -> float | None:
    return time.monotonic() + args.timeout if args.timeout else None


def _watch_timeout(args: argparse.Namespace, rollout: view.Rollout) -> CommandError:
    return CommandError(
        f"timed out after {args.timeout:g}s watching {_who(rollout.name, rollout.namespace)}: "
        f"phase {rollout.phase or 'not set'}"
    )


async def _watch_live(session: Session, args: argparse.Namespace, body: dict[str, Any]) -> int:
    """On a terminal: one display re-drawn in place until the rollout finishes."""
    console = Console(file=session.out, highlight=False)
    deadline = _watch_deadline(args)
    with Live(console=console, auto_refresh=False, transient=False) as live:
        while True:
            rollout = view.parse(body)
            live.update(view.build(body, datetime.now(UTC), history=args.history), refresh=True)
            if rollout.finished:
                return _exit_for(rollout)
            if deadline is not None and time.monotonic() >= deadline:
                raise _watch_timeout(args, rollout)
            await asyncio.sleep(WATCH_POLL_SECONDS)
            body = await session.get(args.name)


async def _watch_lines(session: Session, args: argparse.Namespace, body: dict[str, Any]) -> int:
    """In a pipe: the whole view (or the object with -o) again each time the object changes."""
    deadline = _watch_deadline(args)
    seen: str | None = None
    while True:
        rollout = view.parse(body)
        version = str((body.get("metadata") or {}).get("resourceVersion"))
        if version != seen:
            if seen is not None and not args.output:
                session.out.write("\n")
            if args.output == "yaml":
                session.out.write("---\n")
            session.out.write(
                _dump(body, args.output)
                if args.output
                else view.render_text(body, datetime.now(UTC), history=args.history)
            )
            session.out.flush()
            seen = version
        if rollout.finished:
            return _exit_for(rollout)
        if deadline is not None and time.monotonic() >= deadline:
            raise _watch_timeout(args, rollout)
        await asyncio.sleep(WATCH_POLL_SECONDS)
        body = await session.get(args.name)


# promote, abort, pause, resume ----------------------------------------------------------------------------------
async def _promote(session: Session, args: argparse.Namespace) -> int:
    body = await session.get(args.name)
    rollout = view.parse(body)
    who = _who(args.name, session.namespace)
    phase = rollout.phase
    if phase is not None and phase not in phases.PROMOTABLE and not args.force:
        hint = " (resume it first)" if phase == "Paused" else ""
        raise CommandError(
            f"{who} is {phase}{hint}: the operator promotes only in Shadow, Canary, Preview or Baking and "
            "would ignore this command; use --force to write it anyway"
        )
    earlier = ((body.get("metadata") or {}).get("annotations") or {}).get(commands.PROMOTE)
    command_id = new_command_id()
    value = f"{commands.FULL_PREFIX}{command_id}" if args.full else command_id
    await session.annotate(args.name, {commands.PROMOTE: value})
    candidate = rollout.status.candidate_version or "the candidate"
    what = (
        f"skip the remaining steps and promote {candidate}" if args.full else _next_move(rollout, candidate)
    )
    session.say(f"promote requested: {who} will {what} (id {value})")
    if earlier and earlier != rollout.status.acknowledged.promote:
        session.warn(f"the earlier promote {earlier} was not acknowledged yet; this one replaces it")
    if phase is None:
        session.warn(f"{who} has no status yet: is the operator running?")
    await _acknowledged(session, args, "promote", value)
    return OK


async def _acknowledged(
    session: Session, args: argparse.Namespace, command: str, value: str
) -> view.Rollout | None:
    """With --wait, waits until status.acknowledged.<command> shows the id, and says where the rollout is."""
    if not args.wait:
        return None
    done = await session.wait(
        args.name,
        lambda r: getattr(r.status.acknowledged, command) == value,
        args.timeout,
        f"the operator to acknowledge {command} {value}",
    )
    session.say(f"acknowledged: {_position(done)}")
    return done


def _next_move(rollout: view.Rollout, candidate: str) -> str:
    """What one `promote` does in the rollout's phase."""
    blue_green = rollout.spec is not None and rollout.spec.strategy.blue_green is not None
    if rollout.phase == "Preview":
        return f"switch every slice to {candidate} (once all its replicas are model-ready)"
    if rollout.phase == "Baking":
        return f"end the bake and make {candidate} stable"
    if rollout.phase == "Shadow" and blue_green:
        return "end the shadow phase (the blue-green preview follows)"
    return (
        "advance one step"
        + (" (from shadow to the first canary step)" if rollout.phase == "Shadow" else "")
        + (" (past the last step: promotion)" if _at_last_step(rollout) else "")
    )


def _at_last_step(rollout: view.Rollout) -> bool:
    total = rollout.steps()
    return rollout.phase == "Canary" and total is not None and rollout.status.step >= total


async def _abort(session: Session, args: argparse.Namespace) -> int:
    rollout = view.parse(await session.get(args.name))
    who = _who(args.name, session.namespace)
    s = rollout.status
    if s.phase is not None and s.phase not in phases.IN_FLIGHT and not args.force:
        raise CommandError(
            f"{who} is {s.phase}: no rollout in progress to abort; use --force to write the command anyway"
        )
    value = new_command_id()
    await session.annotate(args.name, {commands.ABORT: value})
    target = f" to stable {s.stable_version}" if s.stable_version else ""
    session.say(
        f"abort requested: {who} will roll {s.candidate_version or 'the candidate'} back{target} (id {value})"
    )
    if s.phase is None:
        session.warn(f"{who} has no status yet: is the operator running?")
    done = await _acknowledged(session, args, "abort", value)
    return OK if done is None or done.phase == "RolledBack" or s.phase not in phases.IN_FLIGHT else FAILED


async def _retry(session: Session, args: argparse.Namespace) -> int:
    rollout = view.parse(await session.get(args.name))
    who = _who(args.name, session.namespace)
    s = rollout.status
    if s.phase not in phases.FAILED and not args.force:
        raise CommandError(
            f"{who} is {s.phase}: retry restarts a RolledBack, Blocked or Failed rollout; "
            "use --force to write the command anyway"
        )
    value = new_command_id()
    await session.annotate(args.name, {commands.RETRY: value})
    session.say(
        f"retry requested: {who} will roll {s.candidate_version or 'the candidate'} out again from the "
        f"beginning (id {value})"
    )
    await _acknowledged(session, args, "retry", value)
    return OK


async def _pause(session: Session, args: argparse.Namespace) -> int:
    rollout = view.parse(await session.get(args.name))
    who = _who(args.name, session.namespace)
    await session.annotate(args.name, {commands.PAUSED: "true"})
    phase = rollout.phase
    session.say(f"pause requested: {who} holds its traffic where it is until resumed")
    if phase in phases.TERMINAL:
        session.say(
            f"{who} is {phase}: nothing is in progress; the next rollout pauses once its candidate is warming"
        )
        return OK
    if phase is None:
        session.warn(f"{who} has no status yet: is the operator running?")
    if not args.wait or phase == "Paused":
        return OK
    done = await session.wait(
        args.name,
        lambda r: r.phase == "Paused" or r.phase in phases.TERMINAL,
        args.timeout,
        "phase Paused",
    )
    session.say(f"now {_position(done)}")
    return OK if done.phase == "Paused" else FAILED


async def _resume(session: Session, args: argparse.Namespace) -> int:
    rollout = view.parse(await session.get(args.name))
    who = _who(args.name, session.namespace)
    await session.annotate(args.name, {commands.PAUSED: None})
    session.say(
        f"resume requested: {who} continues"
        + (f" in {rollout.status.paused_phase}" if rollout.status.paused_phase else "")
    )
    if not args.wait or rollout.phase != "Paused":
        return OK
    done = await session.wait(args.name, lambda r: r.phase != "Paused", args.timeout, "the end of the pause")
    session.say(f"now {_position(done)}")
    return OK


# undo ------------------------------------------------------------------------------------------------------------
def _git_note(body: dict[str, Any], name: str, version: str, previous: str) -> tuple[str, bool]:
    meta = body.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    tracked = next((f"{key}: {annotations[key]}" for key in GIT_TRACKING if key in annotations), None)
    advice = (
        f"if spec.model of {name} comes from Git (Argo CD, Flux), set version {previous} there too: "
        f"otherwise the next sync puts {version} back and starts that rollout again"
    )
    if tracked:
        return f"{name} is tracked by Argo CD ({tracked}); {advice}", True
    return advice, False


async def _undo(session: Session, args: argparse.Namespace) -> int:
    body = await session.get(args.name)
    rollout = view.parse(body)
    s = rollout.status
    who = _who(args.name, session.namespace)
    spec_model = (body.get("spec") or {}).get("model") or {}
    previous = s.previous
    if previous is None or not s.previous_version:
        raise CommandError(
            f"{who} has no previous version to go back to (status.previous is empty: no version has been "
            "promoted over an earlier one)"
        )
    if not previous.uri:
        raise CommandError(f"{who}: status.previous has no model uri; set spec.model by hand")
    if spec_model.get("version") == previous.version:
        session.say(f"{who}: spec.model.version is already {previous.version}; nothing to do")
        return OK
    now = datetime.now(UTC)
    warm_until = s.previous_warm_until
    if not args.force:
        if warm_until is None or warm_until <= now:
            when = f" at {warm_until.strftime('%Y-%m-%dT%H:%M:%SZ')}" if warm_until else ""
            raise CommandError(
                f"{who}: the previous version {previous.version} is no longer kept warm (scaled down{when}, "
                "see status.previousWarmUntil); going back now is a full, cold rollout of it. Use --force "
                "to do it anyway"
            )
        if s.phase in phases.IN_FLIGHT and s.candidate_version:
            raise CommandError(
                f"{who} is rolling out {s.candidate_version} ({s.phase}): use `{PROG} abort {args.name}` to "
                "stop it; undo goes back to the previous version after a promotion. Use --force to replace "
                f"the rollout with {previous.version} anyway"
            )
    schema = previous.serving_schema.wire() if previous.serving_schema else None
    current_schema = spec_model.get("schema") or {}
    if schema is not None:
        # A merge patch merges objects: clear keys the previous schema does not have, so it is copied exactly.
        schema = {**dict.fromkeys(current_schema), **schema}
    model = {"version": previous.version, "uri": previous.uri, "schema": schema}
    metadata = {"resourceVersion": (body.get("metadata") or {}).get("resourceVersion")}
    await session.patch(args.name, {"metadata": metadata, "spec": {"model": model}})
    current = spec_model.get("version", "?")
    session.say(f"undo: spec.model of {who} set back to {previous.version} ({previous.uri}) from {current}")
    warm = (
        f"; its replicas are kept warm until {warm_until.strftime('%Y-%m-%dT%H:%M:%SZ')}, so they are "
        "model-ready at once"
        if warm_until is not None and warm_until > now
        else ""
    )
    session.say(
        f"the operator now rolls {previous.version} out from stable {s.stable_version} with the rollout's "
        f"strategy{warm}. To skip the analysis once it is in Shadow or Canary: {PROG} promote {args.name} "
        "--full"
    )
    note, tracked = _git_note(body, args.name, str(current), previous.version)
    if tracked:
        session.warn(note)
    else:
        session.say(f"note: {note}")
    return OK


# lint and version --------------------------------------------------------------------------------------------
def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" + ("" if number == 1 else "s")


def _lint(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    findings, count = linting.lint_files(args.files)
    errors = sum(1 for f in findings if f.severity == "error")
    warnings = len(findings) - errors
    if args.output:
        report = {
            "rollouts": count,
            "errors": errors,
            "warnings": warnings,
            "findings": [f.as_dict() for f in findings],
        }
        out.write(_dump(report, args.output))
    else:
        for finding in findings:
            out.write(finding.line() + "\n")
        print(
            f"{_count(count, 'ModelRollout')} checked: {_count(errors, 'error')}, "
            f"{_count(warnings, 'warning')}",
            file=err,
        )
    if errors or (args.strict and warnings):
        return FAILED
    return OK


def _version(args: argparse.Namespace, out: TextIO) -> int:
    if args.output:
        out.write(_dump({"clientVersion": __version__, "apiVersion": API_VERSION}, args.output))
    else:
        out.write(f"kubectl-modelrollout {__version__} (API {API_VERSION})\n")
    return OK


# Arguments --------------------------------------------------------------------------------------------------------
def _connection(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """kubectl's connection flags; on subcommands they default to SUPPRESS so they never undo the top level's."""

    def default(value: Any) -> Any:
        return value if top else argparse.SUPPRESS

    parser.add_argument(
        "-n", "--namespace", default=default(None), help="namespace (default: the context's, else 'default')"
    )
    parser.add_argument(
        "--kubeconfig", default=default(None), help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config)"
    )
    parser.add_argument("--context", default=default(None), help="kubeconfig context to use")


def _wait_flags(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--wait", action="store_true", help=f"wait until {what}")
    parser.add_argument(
        "--timeout",
        type=_duration,
        default=_duration(DEFAULT_WAIT),
        help=f"how long --wait waits (default {DEFAULT_WAIT})",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="See and steer ModelRollouts: per-slice status, manual promotion, abort, pause, undo, lint.",
        epilog="Exit codes: 0 ok, 1 failure, 2 usage. Run `kubectl modelrollout COMMAND --help` for details.",
    )
    _connection(parser, top=True)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str, cluster: bool = True) -> argparse.ArgumentParser:
        made = sub.add_parser(name, help=help_text, description=help_text)
        if cluster:
            _connection(made, top=False)
        return made

    status = command(
        "status", "show phase, versions, per-slice verdicts with evidence, conditions and history"
    )
    status.add_argument("name", help="ModelRollout name")
    status.add_argument(
        "-w", "--watch", action="store_true", help="re-render on change until the phase is final"
    )
    status.add_argument("-o", "--output", choices=["json", "yaml"], help="print the stored object instead")
    status.add_argument(
        "--timeout", type=_duration, default=None, help="with --watch: give up after this long (exit 1)"
    )
    status.add_argument("--history", type=int, default=5, help="decisions to show (default 5)")
    status.set_defaults(run=_status)

    promote = command("promote", "advance one step (shadow to canary, step to step, last step to promotion)")
    promote.add_argument("name")
    promote.add_argument("--full", action="store_true", help="skip every remaining step and promote now")
    promote.add_argument("--force", action="store_true", help="write the command whatever the phase")
    _wait_flags(promote, "the operator acknowledges the command")
    promote.set_defaults(run=_promote)

    abort = command("abort", "roll the rollout in progress back to stable")
    abort.add_argument("name")
    abort.add_argument("--force", action="store_true", help="write the command whatever the phase")
    _wait_flags(abort, "the operator acknowledges the command")
    abort.set_defaults(run=_abort)

    retry = command("retry", "roll a RolledBack, Blocked or Failed version out again from the beginning")
    retry.add_argument("name")
    retry.add_argument("--force", action="store_true", help="write the command whatever the phase")
    _wait_flags(retry, "the operator acknowledges the command")
    retry.set_defaults(run=_retry)

    pause = command("pause", "hold the rollout where it is (traffic unchanged, guards keep judging)")
    pause.add_argument("name")
    _wait_flags(pause, "the phase is Paused")
    pause.set_defaults(run=_pause)

    resume = command("resume", "continue a paused rollout (the current step's pause starts again)")
    resume.add_argument("name")
    _wait_flags(resume, "the phase is no longer Paused")
    resume.set_defaults(run=_resume)

    undo = command("undo", "go back to the previous version while it is still kept warm")
    undo.add_argument("name")
    undo.add_argument(
        "--force",
        action="store_true",
        help="also when the previous version is no longer warm or a rollout is in progress",
    )
    undo.set_defaults(run=_undo)

    lint = command(
        "lint", "check ModelRollout manifests offline (admission rules and semantic checks)", False
    )
    lint.add_argument("files", nargs="+", metavar="FILE", help="YAML files ('-' for standard input)")
    lint.add_argument("-o", "--output", choices=["json", "yaml"], help="machine-readable findings")
    lint.add_argument("--strict", action="store_true", help="fail on warnings too")

    version = command("version", "print the plugin version", False)
    version.add_argument("-o", "--output", choices=["json", "yaml"])
    return parser


# Entry ------------------------------------------------------------------------------------------------------------
CommandRun = Callable[[Session, argparse.Namespace], Awaitable[int]]


async def _run_cluster(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    try:
        namespace = args.namespace or default_namespace(args.kubeconfig, args.context)
        kube = await connect(args.kubeconfig, args.context)
    except KubeError as error:
        raise CommandError(f"cannot load the kubeconfig: {error}") from None
    run: CommandRun = args.run
    try:
        return await run(Session(kube, namespace, out, err), args)
    finally:
        await kube.close()


def main(argv: Sequence[str] | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    try:
        if args.command == "lint":
            return _lint(args, out, err)
        if args.command == "version":
            return _version(args, out)
        return asyncio.run(_run_cluster(args, out, err))
    except CommandError as error:
        print(f"error: {error}", file=err, flush=True)
        return error.code
    except KubeError as error:
        reach = "cannot reach the API server: " if error.unreachable else ""
        print(f"error: {reach}{error}", file=err, flush=True)
        return FAILED
    except KeyboardInterrupt:
        return INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
