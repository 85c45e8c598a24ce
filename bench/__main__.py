"""`make bench`: `python -m bench [--only latency|queries|writes|memory] [--runs N]`.

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
from typing import Any

from rich.console import Console

from bench import latency, memory, queries, writes
from bench.common import REPO
from modelrollout.sandbox.cluster import Sandbox


async def main(args: argparse.Namespace) -> int:
    console = Console(highlight=False)
    root = REPO / ".sandbox" / "bench"
    sandbox = Sandbox(root, log=console.print)
    console.print(f"[bold]bench[/bold]: starting a sandbox in {root}")
    await asyncio.to_thread(sandbox.up)
    results: dict[str, Any] = {"machine": {"python": platform.python_version(), "cpus": os.cpu_count()}}
    started = time.monotonic()
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
        if args.only in (None, "memory"):
            console.print("[bold]operator memory with 100 rollouts[/bold]")
            results["memory"] = await memory.run(sandbox, console)
    finally:
        await asyncio.to_thread(sandbox.down)
    results["elapsed_seconds"] = time.monotonic() - started
    (root / "results.json").write_text(json.dumps(results, indent=2))
    console.print(f"results: {root / 'results.json'}")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--only", choices=["latency", "queries", "writes", "memory"])
    parser.add_argument("--runs", type=int, default=20, help="detection-latency runs (default 20)")
    raise SystemExit(asyncio.run(main(parser.parse_args())))
