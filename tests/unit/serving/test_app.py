"""The serving app over real HTTP on 127.0.0.1: readiness gating, liveness, predictions and metrics."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from modelrollout.api.spec import Slice
from modelrollout.serving import Prediction, PredictionError, RequestContext, ServingConfig, create_app
from modelrollout.serving.app import readiness
from modelrollout.serving.metrics import DURATION_BUCKETS, SCORE_BUCKETS

SLICES = (
    Slice.model_validate({"name": "ios", "match": {"headers": {"x-platform": {"exact": "ios"}}}}),
    Slice.model_validate({"name": "android", "match": {"headers": {"x-platform": {"exact": "android"}}}}),
)
CONFIG = ServingConfig(model_name="recommender", model_version="v2", slices=SLICES, host="127.0.0.1")


class GatedModel:
    """A model whose load and warm-up finish only when the test says so."""

    def __init__(self, fail_load: bool = False, fail_warmup: bool = False) -> None:
        self.fail_load = fail_load
        self.fail_warmup = fail_warmup
        self.release_load = asyncio.Event()
        self.release_warmup = asyncio.Event()
        self.warmup_inferences = 0
        self.seen: list[tuple[Mapping[str, Any], RequestContext]] = []

    async def load(self) -> None:
        await self.release_load.wait()
        if self.fail_load:
            raise OSError("model file not found")

    async def warmup(self) -> None:
        await self.release_warmup.wait()
        if self.fail_warmup:
            raise RuntimeError("NaN in warm-up output")
        for _ in range(3):
            await self.score({"user_id": "warmup"})
            self.warmup_inferences += 1

    async def score(self, features: Mapping[str, Any]) -> float:
        return 0.9 if features.get("user_id") == "high" else 0.42

    async def predict(self, features: Mapping[str, Any], context: RequestContext) -> Any:
        self.seen.append((features, context))
        if features.get("fail"):
            raise PredictionError("simulated failure")
        if features.get("crash"):
            raise ZeroDivisionError("bug")
        if features.get("nan"):
            return float("nan")
        if "label" in features:
            return Prediction(label=features["label"])
        if "answer" in features:  # whatever the test wants the model to return
            return features["answer"]
        return await self.score(features)


@pytest.fixture
async def serving() -> AsyncIterator[tuple[GatedModel, TestClient[Any, Any]]]:
    model = GatedModel()
    async with TestClient(TestServer(create_app(model, CONFIG), host="127.0.0.1")) as client:
        yield model, client


async def _eventually(check: Callable[[], Awaitable[bool]], within: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


async def _ready_status(client: TestClient[Any, Any], path: str = "/ready") -> tuple[int, dict[str, Any]]:
    response = await client.get(path)
    return response.status, await response.json()


async def _make_ready(model: GatedModel, client: TestClient[Any, Any]) -> None:
    model.release_load.set()
    model.release_warmup.set()

    async def ready() -> bool:
        return (await _ready_status(client))[0] == 200

    await _eventually(ready)


async def test_ready_only_after_load_and_warmup(serving: tuple[GatedModel, TestClient[Any, Any]]) -> None:
    model, client = serving
    status, body = await _ready_status(client)
    assert (status, body["state"]) == (503, "loading")
    assert "loading" in body["reason"]
    live = await client.get("/live")
    assert live.status == 200  # liveness does not wait for the model

    model.release_load.set()

    async def warming() -> bool:
        return bool((await _ready_status(client))[1]["state"] == "warming")

    await _eventually(warming)
    status, body = await _ready_status(client)
    assert status == 503
    assert model.warmup_inferences == 0
    for _ in range(20):  # it stays not ready while warm-up is pending, however often the loop runs
        await asyncio.sleep(0)
        assert (await _ready_status(client))[0] == 503

    model.release_warmup.set()

    async def ready() -> bool:
        return (await _ready_status(client))[0] == 200

    await _eventually(ready)
    status, body = await _ready_status(client)
    assert body == {
        "ready": True,
        "state": "ready",
        "reason": "model loaded and warmed up",
        "model": "recommender",
        "version": "v2",
    }
    assert model.warmup_inferences == 3


@pytest.mark.parametrize(
    ("model", "reason"),
    [
        (GatedModel(fail_load=True), "model loading failed: OSError: model file not found"),
        (GatedModel(fail_warmup=True), "model warm-up failed: RuntimeError: NaN in warm-up output"),
    ],
)
async def test_failed_load_or_warmup_keeps_it_not_ready(model: GatedModel, reason: str) -> None:
    async with TestClient(TestServer(create_app(model, CONFIG), host="127.0.0.1")) as client:
        model.release_load.set()
        model.release_warmup.set()

        async def failed() -> bool:
            return bool((await _ready_status(client))[1]["state"] == "failed")

        await _eventually(failed)
        for _ in range(20):  # failed is final: it stays so however often the loop runs
            await asyncio.sleep(0)
            assert (await _ready_status(client))[1]["state"] == "failed"
        status, body = await _ready_status(client)
        assert (status, body["reason"]) == (503, reason)
        assert (await client.get("/live")).status == 200
        response = await client.post("/predict", json={})
        assert response.status == 503


async def test_predictions_are_refused_before_the_model_is_ready(
    serving: tuple[GatedModel, TestClient[Any, Any]],
) -> None:
    model, client = serving
    response = await client.post("/predict", json={"user_id": "u1"}, headers={"x-platform": "ios"})
    assert response.status == 503
    assert "model not ready" in (await response.json())["error"]
    assert model.seen == []


async def test_configurable_ready_path() -> None:
    model = GatedModel()
    config = ServingConfig(model_name="m", model_version="v1", ready_path="/v2/models/m/ready")
    async with TestClient(TestServer(create_app(model, config), host="127.0.0.1")) as client:
        model.release_load.set()
        model.release_warmup.set()

        async def ready() -> bool:
            return (await _ready_status(client, "/v2/models/m/ready"))[0] == 200

        await _eventually(ready)
        assert (await client.get("/ready")).status == 404


async def test_predict_returns_score_and_version_and_passes_the_slice(
    serving: tuple[GatedModel, TestClient[Any, Any]],
) -> None:
    model, client = serving
    await _make_ready(model, client)
    response = await client.post("/predict", json={"user_id": "high"}, headers={"X-Platform": "android"})
    assert response.status == 200
    body = await response.json()
    assert body["score"] == 0.9
    assert body["version"] == "v2"
    assert body["slice"] == "android"
    features, context = model.seen[-1]
    assert features == {"user_id": "high"}
    assert context.slice == "android"
    assert context.headers["x-platform"] == "android"


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"not json", 400),
        (b"[1, 2]", 400),
        (json.dumps({"fail": True}).encode(), 500),
        (json.dumps({"crash": True}).encode(), 500),
        (json.dumps({"answer": {"not": "a prediction"}}).encode(), 500),
        (json.dumps({"answer": "positive"}).encode(), 500),
    ],
)
async def test_errors_answer_with_status(
    serving: tuple[GatedModel, TestClient[Any, Any]], body: bytes, status: int
) -> None:
    model, client = serving
    await _make_ready(model, client)
    response = await client.post("/predict", data=body, headers={"content-type": "application/json"})
    assert response.status == status
    assert "error" in await response.json()


def _samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def _key(name: str, version: str = "v2", **labels: str) -> tuple[str, frozenset[tuple[str, str]]]:
    return name, frozenset({"model": "recommender", "version": version, **labels}.items())


async def test_metrics_have_the_profile_names_and_labels(
    serving: tuple[GatedModel, TestClient[Any, Any]],
) -> None:
    model, client = serving
    await _make_ready(model, client)
    for headers, body in [
        ({"x-platform": "ios"}, {"user_id": "high"}),
        ({"x-platform": "ios"}, {"user_id": "low"}),
        ({"x-platform": "android"}, {"fail": True}),
        ({}, {"user_id": "x"}),
    ]:
        await client.post("/predict", json=body, headers=headers)
    await client.post("/predict", data=b"{", headers={"x-platform": "android"})

    response = await client.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    samples = _samples(await response.text())

    assert samples[_key("model_requests_total", slice="ios", code="200")] == 2
    assert samples[_key("model_requests_total", slice="android", code="500")] == 1
    assert samples[_key("model_requests_total", slice="android", code="400")] == 1
    assert samples[_key("model_requests_total", slice="default", code="200")] == 1
    # Series exist from the start for every slice, so a first error is an increase from 0.
    assert samples[_key("model_requests_total", slice="ios", code="500")] == 0
    assert samples[_key("model_requests_total", slice="android", code="200")] == 0

    duration_les = {
        dict(labels)["le"] for name, labels in samples if name == "model_request_duration_seconds_bucket"
    }
    assert {float(le) for le in duration_les} == {*DURATION_BUCKETS, float("inf")}
    assert min(DURATION_BUCKETS) == 0.001
    assert max(DURATION_BUCKETS) == 10.0
    assert samples[_key("model_request_duration_seconds_count", slice="android")] == 2  # errors are timed too
    assert samples[_key("model_request_duration_seconds_count", slice="ios")] == 2

    score_les = sorted(
        float(dict(labels)["le"]) for name, labels in samples if name == "model_prediction_score_bucket"
    )
    assert sorted(set(score_les)) == [*SCORE_BUCKETS, float("inf")]
    assert tuple(round(0.05 * i, 2) for i in range(1, 21)) == SCORE_BUCKETS
    # Scores of successful predictions only: 0.42 and 0.9 for ios, none for the failed android requests.
    assert samples[_key("model_prediction_score_count", slice="ios")] == 2
    assert samples[_key("model_prediction_score_count", slice="android")] == 0
    assert samples[_key("model_prediction_score_bucket", slice="ios", le="0.45")] == 1
    assert samples[_key("model_prediction_score_bucket", slice="ios", le="0.9")] == 2
    assert samples[_key("model_prediction_score_sum", slice="ios")] == pytest.approx(1.32)

    labels_seen = {
        frozenset(dict(labels)) - {"le", "code", "prediction", "outcome"}
        for name, labels in samples
        if name.startswith("model_")
    }
    assert labels_seen == {frozenset({"model", "version", "slice"})}


async def test_each_app_has_its_own_registry() -> None:
    first, second = GatedModel(), GatedModel()
    app_a = create_app(first, CONFIG)
    app_b = create_app(second, CONFIG)  # same names and labels: would clash in a shared registry
    async with (
        TestClient(TestServer(app_a, host="127.0.0.1")) as a,
        TestClient(TestServer(app_b, host="127.0.0.1")) as b,
    ):
        await _make_ready(first, a)
        await a.post("/predict", json={}, headers={"x-platform": "ios"})
        samples_a = _samples(await (await a.get("/metrics")).text())
        samples_b = _samples(await (await b.get("/metrics")).text())
    assert samples_a[_key("model_requests_total", slice="ios", code="200")] == 1
    assert samples_b[_key("model_requests_total", slice="ios", code="200")] == 0


async def test_readiness_drops_when_the_server_shuts_down() -> None:
    model = GatedModel()
    app = create_app(model, CONFIG)
    server = TestServer(app, host="127.0.0.1")
    async with TestClient(server) as client:
        await _make_ready(model, client)
    assert readiness(app).state.value == "stopping"
    assert not readiness(app).ready


async def _predictions(client: TestClient[Any, Any]) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return _samples(await (await client.get("/metrics")).text())


@pytest.mark.parametrize(
    "body",
    [{"nan": True}, {"answer": None}, {"answer": []}, {"answer": ""}, {"answer": float("inf")}],
    ids=["nan", "null", "empty-list", "empty-string", "infinite"],
)
async def test_a_null_prediction_is_answered_as_given_and_counted(
    serving: tuple[GatedModel, TestClient[Any, Any]], body: dict[str, Any]
) -> None:
    """A broken artifact answers 200 with nothing in it: the answer says so, and the counter sees it."""
    model, client = serving
    await _make_ready(model, client)
    response = await client.post("/predict", data=json.dumps(body), headers={"x-platform": "android"})
    assert response.status == 200
    answer = await response.json()
    assert answer["score"] is None
    assert answer["request_id"].startswith("mr1.")
    await client.post("/predict", json={"user_id": "high"}, headers={"x-platform": "android"})
    samples = await _predictions(client)
    assert samples[_key("model_predictions_total", slice="android", prediction="null")] == 1
    assert samples[_key("model_predictions_total", slice="android", prediction="value")] == 1
    assert samples[_key("model_requests_total", slice="android", code="200")] == 2
    # Series exist for every slice from the start, so the first null is an increase from 0.
    assert samples[_key("model_predictions_total", slice="ios", prediction="null")] == 0
    assert samples[_key("model_prediction_score_count", slice="android")] == 1, "a null has no score"


async def _answer(client: TestClient[Any, Any], body: dict[str, Any], platform: str) -> dict[str, Any]:
    response = await client.post("/predict", json=body, headers={"x-platform": platform})
    assert response.status == 200
    answer: dict[str, Any] = await response.json()
    assert response.headers["x-modelrollout-request-id"] == answer["request_id"]
    return answer


async def test_feedback_counts_correct_and_incorrect_for_the_version_and_slice_that_answered(
    serving: tuple[GatedModel, TestClient[Any, Any]],
) -> None:
    model, client = serving
    await _make_ready(model, client)
    high = await _answer(client, {"user_id": "high"}, "ios")  # 0.9: decides label "1"
    low = await _answer(client, {"user_id": "low"}, "ios")  # 0.42: decides "0"
    labelled = await _answer(client, {"label": "cat"}, "android")
    null = await _answer(client, {"answer": None}, "android")
    items = [
        {"request_id": high["request_id"], "label": 1},
        {"request_id": low["request_id"], "label": True},
        {"request_id": labelled["request_id"], "label": "cat"},
        {"request_id": null["request_id"], "label": 0},
        {"request_id": low["request_id"], "correct": True},
    ]
    response = await client.post("/feedback", json=items)
    assert response.status == 200
    assert await response.json() == {"accepted": 5, "errors": []}
    samples = await _predictions(client)
    assert samples[_key("model_feedback_total", slice="ios", outcome="correct")] == 2
    assert samples[_key("model_feedback_total", slice="ios", outcome="incorrect")] == 1
    assert samples[_key("model_feedback_total", slice="android", outcome="correct")] == 1
    assert samples[_key("model_feedback_total", slice="android", outcome="incorrect")] == 1, "null is wrong"
    assert samples[_key("model_feedback_total", slice="default", outcome="correct")] == 0


async def test_feedback_for_another_version_counts_under_that_version() -> None:
    """Labels reach any replica the mesh picks: the one that answered may be another version, or gone."""
    answering, receiving = GatedModel(), GatedModel()
    other = ServingConfig(model_name="recommender", model_version="v1", slices=SLICES, host="127.0.0.1")
    async with (
        TestClient(TestServer(create_app(answering, CONFIG), host="127.0.0.1")) as v2,
        TestClient(TestServer(create_app(receiving, other), host="127.0.0.1")) as v1,
    ):
        await _make_ready(answering, v2)
        answer = await _answer(v2, {"user_id": "high"}, "android")
        response = await v1.post("/feedback", json={"request_id": answer["request_id"], "label": "1"})
        assert (await response.json())["accepted"] == 1
        scrapes = [await _predictions(v1) for _ in range(3)]
    # v1 had no v2 series yet: two scrapes show them at 0 (increase() cannot see a series' first sample, and
    # Prometheus may drop one scrape), the next one the label.
    for zero in scrapes[:2]:
        assert zero[_key("model_feedback_total", "v2", slice="android", outcome="correct")] == 0
        assert zero[_key("model_feedback_total", "v2", slice="ios", outcome="incorrect")] == 0
    assert scrapes[2][_key("model_feedback_total", "v2", slice="android", outcome="correct")] == 1
    assert scrapes[2][_key("model_feedback_total", "v1", slice="android", outcome="correct")] == 0


@pytest.mark.parametrize(
    ("item", "says"),
    [
        ({"label": 1}, "request_id must be a string"),
        ({"request_id": "mr1.!!!", "label": 1}, "cannot decode"),
        ({"request_id": "REQUEST", "label": 1, "correct": True}, "exactly one of"),
        ({"request_id": "REQUEST"}, "exactly one of"),
        ({"request_id": "REQUEST", "correct": "yes"}, "true or false"),
        ({"request_id": "REQUEST", "label": ""}, "empty"),
        ({"request_id": "REQUEST", "label": [1]}, "a label is text"),
        ([], None),
    ],
)
async def test_feedback_that_cannot_be_counted_is_refused_with_the_reason(
    serving: tuple[GatedModel, TestClient[Any, Any]], item: Any, says: str | None
) -> None:
    model, client = serving
    await _make_ready(model, client)
    answer = await _answer(client, {"user_id": "high"}, "ios")
    if isinstance(item, dict) and item.get("request_id") == "REQUEST":
        item = {**item, "request_id": answer["request_id"]}
    response = await client.post("/feedback", json=item)
    body = await response.json()
    if says is None:
        assert (response.status, body) == (200, {"accepted": 0, "errors": []})
        return
    assert response.status == 400
    assert body["accepted"] == 0
    assert says in body["errors"][0]
    samples = await _predictions(client)
    assert samples[_key("model_feedback_total", slice="ios", outcome="correct")] == 0


async def test_feedback_for_another_model_is_refused() -> None:
    model = GatedModel()
    other = ServingConfig(model_name="ranker", model_version="v2", slices=SLICES, host="127.0.0.1")
    async with (
        TestClient(TestServer(create_app(model, CONFIG), host="127.0.0.1")) as client,
        TestClient(TestServer(create_app(GatedModel(), other), host="127.0.0.1")) as ranker,
    ):
        await _make_ready(model, client)
        answer = await _answer(client, {"user_id": "high"}, "ios")
        response = await ranker.post("/feedback", json={"request_id": answer["request_id"], "label": 1})
        assert response.status == 400
        assert "model 'recommender', not 'ranker'" in (await response.json())["errors"][0]
