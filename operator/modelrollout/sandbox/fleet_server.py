"""One simulated model server: `python -m modelrollout.sandbox.fleet_server --port N [--parent-pid P]`.

It reads what a generated pod would get (MODEL_NAME, MODEL_VERSION, MODEL_URI, MODELROLLOUT_SLICES) plus its
simulated behaviour (MODELROLLOUT_FLEET_BEHAVIOUR, JSON of a scenario's VersionBehaviour) and seed
(MODELROLLOUT_FLEET_SEED). It listens on loopback only, stops on SIGTERM/SIGINT, and exits by itself when the
process that started it is gone, so a crashed demo leaves no server behind.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import os
import signal
import sys
from collections.abc import Sequence
from dataclasses import replace

from pydantic import ValidationError

from modelrollout.sandbox.fleet import BEHAVIOUR_ENV, SEED_ENV, SimulatedModel, version_rng
from modelrollout.sandbox.scenario import VersionBehaviour
from modelrollout.serving.app import ServingConfig, serve

log = logging.getLogger("modelrollout.fleet")
PARENT_CHECK_INTERVAL = 1.0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fleet_server", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to listen on")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--parent-pid", type=int, default=None, help="exit when this process is gone")
    return parser


async def _watch_parent(parent_pid: int, stop: asyncio.Event) -> None:
    # Started in its own session, the server outlives a killed parent; it notices being re-parented.
    while not stop.is_set():
        if os.getppid() != parent_pid:
            log.warning("parent process %d is gone; stopping", parent_pid)
            stop.set()
            return
        await asyncio.sleep(PARENT_CHECK_INTERVAL)


async def _run(model: SimulatedModel, config: ServingConfig, parent_pid: int | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    watcher = asyncio.create_task(_watch_parent(parent_pid, stop)) if parent_pid else None
    try:
        await serve(model, config, stop=stop)
    finally:
        if watcher is not None:
            watcher.cancel()
    log.info("stopped")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        if not ipaddress.ip_address(args.host).is_loopback:
            raise ValueError(f"--host {args.host}: the sandbox fleet listens on loopback addresses only")
        config = replace(ServingConfig.from_env(), host=args.host, port=args.port)
        behaviour = VersionBehaviour.model_validate_json(os.environ.get(BEHAVIOUR_ENV) or "{}")
        seed = int(os.environ.get(SEED_ENV, "1"))
    except (ValueError, ValidationError) as error:
        log.error("bad configuration: %s", error)
        return 2
    model = SimulatedModel(behaviour, version_rng(seed, config.model_version))
    asyncio.run(_run(model, config, args.parent_pid))
    return 0


if __name__ == "__main__":
    sys.exit(main())
