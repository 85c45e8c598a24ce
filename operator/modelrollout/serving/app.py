"""An aiohttp app around a model: model-ready and liveness endpoints, predictions and per-slice metrics.

The model loads in the background once the server runs: liveness (`/live`) answers 200 at once, the
model-ready path (default `/ready`) answers 503 with the reason until the model has loaded and its warm-up
inferences succeeded, then 200; it goes back to 503 if loading fails or the server shuts down. This is what
the operator's readinessProbe and startupProbe read, so no traffic reaches a replica whose model is cold.

Every answer carries a request id (body `request_id`, header `x-modelrollout-request-id`); POST /feedback
with that id and the true label, whenever it is known, counts the answer as correct or not for the version
and slice that gave it (`modelrollout.serving.feedback`).
"""

from __future__ import annotations

import asyncio
import enum
import json
import logging
import os
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from aiohttp import web

from modelrollout.api.spec import Slice
from modelrollout.serving.feedback import (
    Answered,
    FeedbackError,
    client_request_id,
    items_of,
    judge_item,
    request_id,
)
from modelrollout.serving.metrics import ServingMetrics
from modelrollout.serving.predictions import NotAPrediction, Prediction, decided_label, interpret
from modelrollout.serving.slices import SLICES_ENV, SliceClassifier, lowercase_headers, parse_slices

log = logging.getLogger(__name__)

LIVE_PATH = "/live"
PREDICT_PATH = "/predict"
FEEDBACK_PATH = "/feedback"
METRICS_PATH = "/metrics"
REQUEST_ID_HEADER = "x-modelrollout-request-id"
CLIENT_REQUEST_ID_HEADER = "x-request-id"
DEFAULT_READY_PATH = "/ready"
DEFAULT_PORT = 8080
PORT_ENV = "MODELROLLOUT_PORT"
HOST_ENV = "MODELROLLOUT_HOST"
READY_PATH_ENV = "MODELROLLOUT_READY_PATH"


class PredictionError(Exception):
    """Raised by a model to answer a request with an HTTP error (default 500) without a logged traceback."""

    def __init__(self, message: str, status: int = 500) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class RequestContext:
    """What the server knows about a request besides its features."""

    slice: str
    """The slice the request was assigned to (the metric label)."""
    headers: Mapping[str, str]
    """Request headers, names lowercased."""


class ServedModel(Protocol):
    """What a model provides to be served."""

    async def load(self) -> None:
        """Loads the model (from the config's model URI); raising marks the replica as never ready."""

    async def warmup(self) -> None:
        """Runs a few inferences so the first user request is not slow; raising marks it never ready."""

    async def predict(
        self, features: Mapping[str, Any], context: RequestContext
    ) -> float | Prediction | None:
        """Scores one request: a number, a Prediction (score and/or label), or None when it has no answer
        (answered as a null prediction); raise PredictionError to answer with an HTTP error."""


@dataclass(frozen=True)
class ServingConfig:
    """Identity of the served version and where it listens."""

    model_name: str
    model_version: str
    model_uri: str = ""
    slices: tuple[Slice, ...] = ()
    host: str = "0.0.0.0"  # a pod must answer on its pod IP; local tools pass 127.0.0.1
    port: int = DEFAULT_PORT
    ready_path: str = DEFAULT_READY_PATH

    def __post_init__(self) -> None:
        taken = (LIVE_PATH, PREDICT_PATH, FEEDBACK_PATH, METRICS_PATH)
        if not self.ready_path.startswith("/") or self.ready_path in taken:
            raise ValueError(
                f"ready path {self.ready_path!r} must start with '/' and differ from {', '.join(taken)}"
            )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ServingConfig:
        """Reads MODEL_NAME, MODEL_VERSION, MODEL_URI and MODELROLLOUT_SLICES (set by the operator on every
        generated pod) and the optional MODELROLLOUT_PORT, MODELROLLOUT_HOST and MODELROLLOUT_READY_PATH."""
        env = os.environ if env is None else env
        missing = [name for name in ("MODEL_NAME", "MODEL_VERSION") if not env.get(name)]
        if missing:
            raise ValueError(f"missing environment variable(s): {', '.join(missing)}")
        port_text = env.get(PORT_ENV, str(DEFAULT_PORT))
        try:
            port = int(port_text)
        except ValueError:
            raise ValueError(f"{PORT_ENV}: not a port number: {port_text!r}") from None
        if not 0 <= port <= 65535:
            raise ValueError(f"{PORT_ENV}: port out of range: {port}")
        return cls(
            model_name=env["MODEL_NAME"],
            model_version=env["MODEL_VERSION"],
            model_uri=env.get("MODEL_URI", ""),
            slices=tuple(parse_slices(env.get(SLICES_ENV))),
            host=env.get(HOST_ENV, "0.0.0.0"),
            port=port,
            ready_path=env.get(READY_PATH_ENV, DEFAULT_READY_PATH),
        )


class ModelState(enum.Enum):
    LOADING = "loading"
    WARMING = "warming"
    READY = "ready"
    FAILED = "failed"
    STOPPING = "stopping"


@dataclass
class Readiness:
    """Where the model is in its start-up, and why it is not ready."""

    state: ModelState = ModelState.LOADING
    reason: str = "model is loading"

    def set(self, state: ModelState, reason: str) -> None:
        self.state, self.reason = state, reason

    @property
    def ready(self) -> bool:
        return self.state is ModelState.READY


MODEL_KEY = web.AppKey("model", ServedModel)
CONFIG_KEY = web.AppKey("config", ServingConfig)
METRICS_KEY = web.AppKey("metrics", ServingMetrics)
READINESS_KEY = web.AppKey("readiness", Readiness)
CLASSIFIER_KEY = web.AppKey("classifier", SliceClassifier)


def create_app(model: ServedModel, config: ServingConfig) -> web.Application:
    """The aiohttp app serving `model`: ready path, /live, POST /predict, POST /feedback and /metrics."""
    app = web.Application()
    classifier = SliceClassifier(config.slices)
    app[MODEL_KEY] = model
    app[CONFIG_KEY] = config
    app[CLASSIFIER_KEY] = classifier
    app[METRICS_KEY] = ServingMetrics(config.model_name, config.model_version, classifier.names)
    app[READINESS_KEY] = Readiness()
    app.router.add_get(config.ready_path, _ready)
    app.router.add_get(LIVE_PATH, _live)
    app.router.add_post(PREDICT_PATH, _predict)
    app.router.add_post(FEEDBACK_PATH, _feedback)
    app.router.add_get(METRICS_PATH, _metrics)
    app.cleanup_ctx.append(_load_in_background)
    app.on_shutdown.append(_stopping)
    return app


def readiness(app: web.Application) -> Readiness:
    return app[READINESS_KEY]


def metrics(app: web.Application) -> ServingMetrics:
    return app[METRICS_KEY]


async def _load_in_background(app: web.Application) -> AsyncIterator[None]:
    task = asyncio.create_task(_start_model(app[MODEL_KEY], app[READINESS_KEY], app[CONFIG_KEY]))
    yield
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def _start_model(model: ServedModel, state: Readiness, config: ServingConfig) -> None:
    name = f"{config.model_name} {config.model_version}"
    try:
        log.info("loading %s from %s", name, config.model_uri or "(no uri)")
        await model.load()
        state.set(ModelState.WARMING, "model loaded; warm-up inferences running")
        await model.warmup()
    except asyncio.CancelledError:
        raise
    except Exception as error:
        phase = "warm-up" if state.state is ModelState.WARMING else "loading"
        log.exception("%s of %s failed", phase, name)
        state.set(ModelState.FAILED, f"model {phase} failed: {type(error).__name__}: {error}")
        return
    state.set(ModelState.READY, "model loaded and warmed up")
    log.info("%s is ready", name)


async def _stopping(app: web.Application) -> None:
    # Readiness drops first, so probes stop sending traffic before the server closes.
    app[READINESS_KEY].set(ModelState.STOPPING, "server is shutting down")


async def _ready(request: web.Request) -> web.Response:
    state = request.app[READINESS_KEY]
    config = request.app[CONFIG_KEY]
    body = {
        "ready": state.ready,
        "state": state.state.value,
        "reason": state.reason,
        "model": config.model_name,
        "version": config.model_version,
    }
    return web.json_response(body, status=200 if state.ready else 503)


async def _live(request: web.Request) -> web.Response:
    return web.json_response({"live": True})


async def _metrics(request: web.Request) -> web.Response:
    body, content_type = request.app[METRICS_KEY].exposition()
    # aiohttp refuses a charset inside content_type; pass the full header instead.
    return web.Response(body=body, headers={"Content-Type": content_type})


async def _predict(request: web.Request) -> web.Response:
    app = request.app
    started = asyncio.get_running_loop().time()
    headers = lowercase_headers(request.headers.items())
    slice_name = app[CLASSIFIER_KEY].classify(headers)
    status, body, prediction = await _answer(request, app, RequestContext(slice_name, headers))
    answer_headers: dict[str, str] = {}
    if status == 200:
        config = app[CONFIG_KEY]
        answered = Answered(
            model=config.model_name,
            version=config.model_version,
            slice=slice_name,
            label=decided_label(prediction),
            client_id=client_request_id(headers.get(CLIENT_REQUEST_ID_HEADER)),
        )
        body["request_id"] = answer_headers[REQUEST_ID_HEADER] = request_id(answered)
    score = prediction.score if prediction is not None else None
    took = asyncio.get_running_loop().time() - started
    app[METRICS_KEY].observe(slice_name, status, took, score, null=status == 200 and prediction is None)
    return web.json_response(body, status=status, headers=answer_headers)


async def _feedback(request: web.Request) -> web.Response:
    """Counts true labels for earlier answers: {"request_id", "label"} or {"request_id", "correct"}, or a list."""
    app = request.app
    config, metrics = app[CONFIG_KEY], app[METRICS_KEY]
    try:
        items = items_of(json.loads(await request.read() or b"null"))
    except (ValueError, UnicodeDecodeError) as error:
        return web.json_response(
            {"accepted": 0, "errors": [f"body is not JSON feedback: {error}"]}, status=400
        )
    accepted, errors = 0, []
    for index, item in enumerate(items):
        try:
            judged = judge_item(item, config.model_name, app[CLASSIFIER_KEY].names)
        except FeedbackError as error:
            errors.append(f"item {index}: {error}")
            continue
        if metrics.observe_feedback(judged.version, judged.slice, judged.correct):
            accepted += 1
        else:
            errors.append(f"item {index}: too many versions to count feedback for on this server")
    status = 200 if accepted or not items else 400
    return web.json_response({"accepted": accepted, "errors": errors}, status=status)


async def _answer(
    request: web.Request, app: web.Application, context: RequestContext
) -> tuple[int, dict[str, Any], Prediction | None]:
    """The status and body of one prediction request, and the prediction (None: none, or a null one)."""
    config = app[CONFIG_KEY]
    state = app[READINESS_KEY]
    identity = {"model": config.model_name, "version": config.model_version, "slice": context.slice}
    if not state.ready:
        return 503, {**identity, "error": f"model not ready: {state.reason}"}, None
    try:
        features = json.loads(await request.read() or b"{}")
    except (ValueError, UnicodeDecodeError) as error:
        return 400, {**identity, "error": f"body is not JSON: {error}"}, None
    if not isinstance(features, dict):
        return 400, {**identity, "error": "body must be a JSON object of features"}, None
    try:
        prediction = interpret(await app[MODEL_KEY].predict(features, context))
    except PredictionError as error:
        return error.status, {**identity, "error": str(error)}, None
    except NotAPrediction as error:
        log.error("model returned no prediction: %s", error)
        return 500, {**identity, "error": f"model returned no prediction: {error}"}, None
    except Exception as error:
        log.exception("prediction failed")
        return 500, {**identity, "error": f"prediction failed: {type(error).__name__}"}, None
    # A null prediction is answered as the model gave it (200, score null) and counted as such.
    body: dict[str, Any] = {**identity, "score": prediction.score if prediction is not None else None}
    if prediction is not None and prediction.label is not None:
        body["label"] = prediction.label
    return 200, body, prediction


async def serve(model: ServedModel, config: ServingConfig, *, stop: asyncio.Event | None = None) -> None:
    """Runs the app on config.host:config.port until `stop` is set or the task is cancelled."""
    runner = web.AppRunner(create_app(model, config), access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, config.host, config.port)
        await site.start()
        log.info("serving %s %s on %s:%s", config.model_name, config.model_version, config.host, config.port)
        await (stop or asyncio.Event()).wait()
    finally:
        await runner.cleanup()
