"""`make bench`: `python -m bench [--only latency|queries|writes|memory|scale] [--runs N] [--scales 100,300,1000]`.

Starts its own sandbox under .sandbox/bench, prints each measurement and writes them to
.sandbox/bench/results.json. Figures vary with the machine: compare medians and ratios, not single runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from bench import experiment, latency, memory, queries, scale, writes
from bench.common import REPO
from modelrollout.sandbox.cluster import Sandbox


async def main(args: argparse.Namespace) -> int:
    console = Console(highlight=False)
    root = REPO / ".sandbox" / "bench"
    if args.only == "experiment":  # pure statistics: no sandbox needed
        console.print("[bold]A/B experiment statistics[/bold]")
        root.mkdir(parents=True, exist_ok=True)
        (root / "experiment.json").write_text(json.dumps(experiment.run(console), indent=2))
        return 0
    results: dict[str, Any] = {"machine": {"python": platform.python_version(), "cpus": os.cpu_count()}}
    started = time.monotonic()
    if args.only in (None, "scale"):
        scales = [int(n) for n in args.scales.split(",")]
        console.print(f"[bold]scale[/bold]: {', '.join(map(str, scales))} rollouts, a fresh sandbox each")
        results["machine"]["load_average"] = os.getloadavg()
        results["scale"] = await scale.run(root, scales, console)
        if args.only == "scale":
            return _write(root, results, started, console)
    sandbox = Sandbox(root, log=console.print)
    console.print(f"[bold]bench[/bold]: starting a sandbox in {root}")
    await asyncio.to_thread(sandbox.up)
    try:
        if args.only in (None, "queries"):
            console.print("[bold]queries per tick[/bold]")
            results["queries"] = await queries.run(sandbox, console)
        if args.only in (None, "writes"):
            console.print("[bold]API writes during a steady pause[/bold]")
            results["writes"] = await writes.run(sandbox, console)
        if args.only in (None, "latency"):
            console.print(f"[bold]detection latency[/bold] ({args.runs} runs)")
            results["latency"] = await latency.run(sandbox, args.runs, console)
        if args.only is None:
            console.print("[bold]A/B experiment statistics[/bold]")
            results["experiment"] = experiment.run(console)
        if args.only in (None, "memory"):
            console.print("[bold]operator memory with 100 rollouts[/bold]")
            results["memory"] = await memory.run(sandbox, console)
    finally:
        await asyncio.to_thread(sandbox.down)
    return _write(root, results, started, console)


def _write(root: Path, results: dict[str, Any], started: float, console: Console) -> int:
    results["elapsed_seconds"] = time.monotonic() - started
    root.mkdir(parents=True, exist_ok=True)
    (root / "results.json").write_text(json.dumps(results, indent=2))
    console.print(f"results: {root / 'results.json'}")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--only", choices=["latency", "queries", "writes", "memory", "scale", "experiment"])
    parser.add_argument(
        "--scales", default="100,300,1000", help="rollout counts of the scale table (default 100,300,1000)"
    )
    parser.add_argument("--runs", type=int, default=20, help="detection-latency runs (default 20)")
    raise SystemExit(asyncio.run(main(parser.parse_args())))
