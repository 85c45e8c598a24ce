"""`modelrollout`: the operator, the local sandbox, the demo and developer commands."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

from rich.console import Console

console = Console(highlight=False, soft_wrap=True)


def _tools(_: argparse.Namespace) -> int:
    from modelrollout.sandbox import tools

    try:
        tools.ensure_all(console.print)
    except tools.ToolError as error:
        console.print(f"[red]tools failed:[/red] {error}")
        return 1
    return 0


def _images(_: argparse.Namespace) -> int:
    from modelrollout.sandbox import images, tools

    started = time.monotonic()
    try:
        built = images.ensure_images(console.print)
    except tools.ToolError as error:
        console.print(f"[red]images failed:[/red] {error}")
        return 1
    console.print(f"  images ready in {time.monotonic() - started:.0f}s (cache: {images.images_dir()})")
    console.print(f"  operator image: {built.operator.ref}")
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


def _operator(args: argparse.Namespace) -> int:
    from modelrollout.controller.main import OperatorOptions, run

    run(
        OperatorOptions(
            namespaces=args.namespace or [],
            kubeconfig=args.kubeconfig,
            metrics_address=args.metrics_address,
            health_address=args.health_address,
            log_format=args.log_format,
            verbose=args.verbose,
            status_refresh=args.status_refresh,
            leader_elect=args.leader_elect,
            lease_name=args.lease_name,
            lease_namespace=args.lease_namespace,
            lease_duration=args.lease_duration,
            batch_queries=args.batch_queries == "on",
            batch_window=args.batch_window,
        )
    )
    return 0


def _demo(args: argparse.Namespace) -> int:
    from pathlib import Path

    from modelrollout.sandbox import tools
    from modelrollout.sandbox.demo import run_demo
    from modelrollout.sandbox.processes import SandboxError
    from modelrollout.sandbox.scenario import ScenarioError

    try:
        return run_demo(Path(args.scenario), keep=args.keep, console=console, provider=args.provider)
    except (SandboxError, tools.ToolError, ScenarioError, TimeoutError) as error:
        console.print(f"[red]demo failed:[/red] {error}")
        return 1


def _crds(args: argparse.Namespace) -> int:
    from pathlib import Path

    from modelrollout.api import crd

    target = Path(args.output)
    target.mkdir(parents=True, exist_ok=True)
    (target / "modelrollout.yaml").write_text(crd.render())
    console.print(f"wrote {target / 'modelrollout.yaml'}")
    return 0


def _docs(args: argparse.Namespace) -> int:
    from pathlib import Path

    from modelrollout.cli import reference

    text = reference.render()
    if args.output is None:
        sys.stdout.write(text)
        return 0
    target = Path(args.output)
    if args.check:
        if not target.is_file() or target.read_text() != text:
            console.print(f"{target} is stale: run `{reference.COMMAND}`")
            return 1
        console.print(f"{target} is up to date")
        return 0
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    console.print(f"wrote {target}")
    return 0


def _lint(args: argparse.Namespace) -> int:
    from modelrollout.cli import kubectl

    return kubectl.main(["lint", *args.files, *(["--strict"] if args.strict else [])])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="modelrollout", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("tools", help="build, unpack or fetch the pinned sandbox tools").set_defaults(func=_tools)
    sub.add_parser(
        "images", help="build the operator, model-server and pause images for the real node (cached)"
    ).set_defaults(func=_images)
    sandbox = sub.add_parser(
        "sandbox", help="the local Kubernetes control plane with kwok nodes and Prometheus"
    )
    sandbox.add_argument("action", choices=["up", "down", "status"])
    sandbox.add_argument("--dir", default=".sandbox", help="where state, logs and the kubeconfig live")
    sandbox.set_defaults(func=_sandbox)

    operator = sub.add_parser(
        "operator", help="run the operator (kopf) against the current kubeconfig or in-cluster"
    )
    operator.add_argument(
        "--namespace", action="append", help="watch only this namespace (repeatable); default: all"
    )
    operator.add_argument(
        "--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config, in-cluster)"
    )
    operator.add_argument("--metrics-address", default="0.0.0.0:8000", help="where /metrics listens")
    operator.add_argument("--health-address", default="0.0.0.0:8080", help="where kopf's /healthz listens")
    operator.add_argument("--log-format", choices=["text", "json"], default="text")
    operator.add_argument(
        "--status-refresh", default="60s", help="how often unchanged evidence is rewritten to status"
    )
    operator.add_argument(
        "--leader-elect",
        action="store_true",
        help="reconcile only while holding a coordination.k8s.io Lease (run two or more replicas)",
    )
    operator.add_argument("--lease-name", default="modelrollout-operator", help="the Lease's name")
    operator.add_argument(
        "--lease-namespace", help="the Lease's namespace (default: $POD_NAMESPACE, else default)"
    )
    operator.add_argument(
        "--lease-duration",
        default="15s",
        help="how long a silent leader keeps the Lease (renewed every third)",
    )
    operator.add_argument(
        "--batch-queries",
        choices=["on", "off"],
        default="on",
        help="rollouts sharing a Prometheus and a query shape share one query (default on)",
    )
    operator.add_argument(
        "--batch-window", default="500ms", help="how long a batch waits for more rollouts (default 500ms)"
    )
    operator.add_argument("-v", "--verbose", action="store_true")
    operator.set_defaults(func=_operator)

    demo = sub.add_parser("demo", help="run a scenario end to end in the local sandbox")
    demo.add_argument("--scenario", default="examples/scenarios/healthy.yaml", help="scenario file")
    demo.add_argument("--keep", action="store_true", help="leave the sandbox running afterwards")
    demo.add_argument(
        "--provider",
        choices=("istio", "gatewayapi"),
        default=None,
        help="traffic provider to run the scenario on: istio (VirtualService) or gatewayapi (HTTPRoute); "
        "default: as the scenario file says",
    )
    demo.set_defaults(func=_demo)

    crds = sub.add_parser("crds", help="generate the CRD YAML from the API models")
    crds.add_argument("--output", default="crds")
    crds.set_defaults(func=_crds)

    docs = sub.add_parser("docs", help="generate documentation from the API models")
    docs.add_argument("kind", choices=["reference"], help="reference: every ModelRollout field")
    docs.add_argument("--output", help="file to write (default: standard output)")
    docs.add_argument("--check", action="store_true", help="only check that --output is up to date")
    docs.set_defaults(func=_docs)

    lint = sub.add_parser(
        "lint", help="check ModelRollout manifests offline (as `kubectl modelrollout lint`)"
    )
    lint.add_argument("files", nargs="+", metavar="FILE")
    lint.add_argument("--strict", action="store_true", help="fail on warnings too")
    lint.set_defaults(func=_lint)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
