"""The model server of the sandbox's model-server image: `python -m modelrollout.sandbox.pod_server`.

It runs in a pod on the sandbox's real node, so it reads what the operator puts on every generated pod
(MODEL_NAME, MODEL_VERSION, MODEL_URI, MODELROLLOUT_SLICES, MODELROLLOUT_PORT, MODELROLLOUT_READY_PATH) and
listens on every address of its pod (the kubelet probes its pod IP). Its behaviour comes from the rollout's
pod template: MODELROLLOUT_FLEET_BEHAVIOURS (JSON: model version -> a scenario's VersionBehaviour; the pod
picks its own version's) and MODELROLLOUT_FLEET_SEED. Each replica draws its own load time (between loadTime
and loadTimeMax), seeded by its pod name, so replicas of one version finish loading at different times.

`POST /sandbox/fail-load` makes a replica's model load that is still running fail when it ends: the fault the
real-node scenario injects into one replica. It answers 409 once the load is over.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import sys
from collections.abc import Mapping

from aiohttp import web
from pydantic import ValidationError

from modelrollout.sandbox.fleet import SEED_ENV, SimulatedModel, version_rng
from modelrollout.sandbox.scenario import VersionBehaviour
from modelrollout.serving.app import ServingConfig, create_app

log = logging.getLogger("modelrollout.pod-server")
BEHAVIOURS_ENV = "MODELROLLOUT_FLEET_BEHAVIOURS"
FAIL_LOAD_PATH = "/sandbox/fail-load"


def behaviour_for(version: str, env: Mapping[str, str]) -> VersionBehaviour:
    """This pod's version's behaviour out of the JSON map; a version it does not name gets the defaults."""
    raw = json.loads(env.get(BEHAVIOURS_ENV) or "{}")
    if not isinstance(raw, dict):
        raise ValueError(f"{BEHAVIOURS_ENV}: must be a JSON object of version -> behaviour")
    return VersionBehaviour.model_validate(raw.get(version, {}))


def pod_app(model: SimulatedModel, config: ServingConfig) -> web.Application:
    app = create_app(model, config)

    async def fail_load(_: web.Request) -> web.Response:
        if model.loaded:
            return web.json_response({"error": "the model has already loaded"}, status=409)
        model.fail_requested = True
        log.warning("the model load of this replica will fail (requested)")
        return web.json_response({"failLoad": True})

    app.router.add_post(FAIL_LOAD_PATH, fail_load)
    return app


async def _serve(app: web.Application, config: ServingConfig) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, config.host, config.port).start()
        log.info("serving %s %s on %s:%s", config.model_name, config.model_version, config.host, config.port)
        await stop.wait()
    finally:
        await runner.cleanup()


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = ServingConfig.from_env()
        behaviour = behaviour_for(config.model_version, os.environ)
        seed = int(os.environ.get(SEED_ENV, "1"))
    except (ValueError, ValidationError) as error:
        log.error("bad configuration: %s", error)
        return 2
    replica = os.environ.get("HOSTNAME") or socket.gethostname()
    model = SimulatedModel(behaviour, version_rng(seed, f"{config.model_version}/{replica}"))
    log.info("replica %s: the model takes %.1fs to load", replica, model.load_seconds)
    asyncio.run(_serve(pod_app(model, config), config))
    return 0


if __name__ == "__main__":
    sys.exit(main())
