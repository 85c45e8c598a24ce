"""`modelrollout`: the operator, the local sandbox, the demo and developer commands."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

from rich.console import Console

console = Console(highlight=False)


def _tools(_: argparse.Namespace) -> int:
    from modelrollout.sandbox import tools

    try:
        tools.ensure_all(console.print)
    except tools.ToolError as error:
        console.print(f"[red]tools failed:[/red] {error}")
        return 1
    return 0


def _sandbox(args: argparse.Namespace) -> int:
    from modelrollout.sandbox import tools
    from modelrollout.sandbox.cluster import Sandbox, status
    from modelrollout.sandbox.processes import SandboxError

    if args.action == "status":
        states = status(args.dir)
        if not states:
            console.print(f"no sandbox in {args.dir}")
            return 1
        for name, running in states.items():
            console.print(f"  {name:<24} {running}")
        return 0 if all(s == "running" for s in states.values()) else 1
    sandbox = Sandbox(args.dir, log=console.print)
    if args.action == "down":
        sandbox.down()
        console.print(f"sandbox in {sandbox.root} stopped")
        return 0
    started = time.monotonic()
    console.print(f"starting the sandbox in {sandbox.root}")
    try:
        state = sandbox.up()
    except (SandboxError, tools.ToolError) as error:
        console.print(f"[red]sandbox failed:[/red] {error}")
        return 1
    console.print(f"sandbox up in {time.monotonic() - started:.1f}s")
    console.print(f"  export KUBECONFIG={state.kubeconfig}")
    console.print(f"  prometheus: {state.prometheus}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="modelrollout", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("tools", help="build or unpack the pinned sandbox binaries into the cache").set_defaults(
        func=_tools
    )
    sandbox = sub.add_parser(
        "sandbox", help="the local Kubernetes control plane with kwok nodes and Prometheus"
    )
    sandbox.add_argument("action", choices=["up", "down", "status"])
    sandbox.add_argument("--dir", default=".sandbox", help="where state, logs and the kubeconfig live")
    sandbox.set_defaults(func=_sandbox)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
