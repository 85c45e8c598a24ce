"""The simulated model: lognormal latency fit, score distributions, per-slice errors and load time."""

from __future__ import annotations

import asyncio
import math
import random
import statistics
import time

import pytest

from modelrollout.api.common import seconds
from modelrollout.sandbox import fleet_server
from modelrollout.sandbox.fleet import (
    BEHAVIOUR_ENV,
    SimulatedModel,
    sample_latency,
    sample_score,
    version_rng,
)
from modelrollout.sandbox.scenario import LatencySpec, ScoreSpec, SliceBehaviour, VersionBehaviour
from modelrollout.serving import PredictionError, RequestContext


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@pytest.mark.parametrize(("p50", "p99"), [("20ms", "80ms"), ("5ms", "6ms"), ("200ms", "2s")])
def test_lognormal_goes_through_the_requested_quantiles(p50: str, p99: str) -> None:
    spec = LatencySpec(p50=p50, p99=p99)
    mu, sigma = spec.lognormal()
    z99 = statistics.NormalDist().inv_cdf(0.99)
    assert math.exp(mu) == pytest.approx(seconds(p50))
    assert math.exp(mu + z99 * sigma) == pytest.approx(seconds(p99))

    rng = random.Random(11)
    samples = [sample_latency(spec, rng) for _ in range(40_000)]
    assert _quantile(samples, 0.50) == pytest.approx(seconds(p50), rel=0.03)
    assert _quantile(samples, 0.99) == pytest.approx(seconds(p99), rel=0.08)


def test_equal_quantiles_give_a_constant_latency() -> None:
    spec = LatencySpec(p50="30ms", p99="30ms")
    rng = random.Random(1)
    assert {round(sample_latency(spec, rng), 9) for _ in range(100)} == {0.03}


@pytest.mark.parametrize(
    ("spec", "mean"),
    [
        (ScoreSpec(beta=(2, 5)), 2 / 7),
        (ScoreSpec(beta=(5, 2)), 5 / 7),
        (ScoreSpec(uniform=(0.2, 0.4)), 0.3),
        (ScoreSpec(constant=0.7), 0.7),
    ],
)
def test_scores_follow_the_distribution(spec: ScoreSpec, mean: float) -> None:
    rng = random.Random(5)
    scores = [sample_score(spec, rng) for _ in range(20_000)]
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert statistics.fmean(scores) == pytest.approx(mean, abs=0.01)


def _behaviour(**overrides: object) -> VersionBehaviour:
    return VersionBehaviour.model_validate(
        {
            "default": {
                "errorRate": 0.0,
                "latency": {"p50": "1ms", "p99": "2ms"},
                "score": {"constant": 0.25},
            },
            "slices": {"android": {"errorRate": 0.3, "score": {"constant": 0.75}}},
            **overrides,
        }
    )


async def _outcomes(model: SimulatedModel, slice_name: str, n: int) -> list[float | None]:
    async def one() -> float | None:
        try:
            return await model.predict({}, RequestContext(slice_name, {}))
        except PredictionError:
            return None

    return list(await asyncio.gather(*(one() for _ in range(n))))


async def test_errors_and_scores_follow_the_slice_override() -> None:
    model = SimulatedModel(_behaviour(), random.Random(3))
    await model.load()
    android = await _outcomes(model, "android", 2000)
    ios = await _outcomes(model, "ios", 500)
    assert android.count(None) / len(android) == pytest.approx(0.3, abs=0.04)
    assert {s for s in android if s is not None} == {0.75}
    assert ios.count(None) == 0  # ios has no override: the default's error rate 0
    assert set(ios) == {0.25}


def test_for_slice_falls_back_to_default_then_builtin() -> None:
    behaviour = VersionBehaviour(
        default=SliceBehaviour(error_rate=0.1), slices={"ios": SliceBehaviour(error_rate=0.5)}
    )
    assert behaviour.for_slice("ios").error_rate == 0.5
    assert behaviour.for_slice("android").error_rate == 0.1
    assert behaviour.for_slice("android").latency == LatencySpec(p50="10ms", p99="40ms")
    assert behaviour.for_slice("android").score == ScoreSpec(beta=(2, 5))


async def test_load_takes_the_load_time_and_warmup_follows() -> None:
    model = SimulatedModel(_behaviour(loadTime="300ms", warmupInferences=2))
    with pytest.raises(RuntimeError, match="before the model loaded"):
        await model.warmup()
    started = time.monotonic()
    await model.load()
    assert time.monotonic() - started >= 0.29
    await model.warmup()


async def test_fail_load_raises_after_the_load_time() -> None:
    model = SimulatedModel(_behaviour(loadTime="50ms", failLoad=True))
    with pytest.raises(RuntimeError, match="simulated load failure"):
        await model.load()


async def test_same_seed_same_answers() -> None:
    behaviour = VersionBehaviour.model_validate(
        {"default": {"latency": {"p50": "1ms", "p99": "1ms"}, "score": {"beta": [2, 5]}, "errorRate": 0.2}}
    )
    runs = []
    for _ in range(2):
        model = SimulatedModel(behaviour, version_rng(7, "v2"))
        await model.load()
        runs.append([await _outcomes(model, "ios", 1) for _ in range(50)])
    assert runs[0] == runs[1]
    other = SimulatedModel(behaviour, version_rng(7, "v1"))
    await other.load()
    assert [await _outcomes(other, "ios", 1) for _ in range(50)] != runs[0]


@pytest.mark.parametrize(
    ("argv", "env"),
    [
        (
            ["--host", "0.0.0.0", "--port", "18080"],
            {"MODEL_NAME": "m", "MODEL_VERSION": "v1"},
        ),  # not loopback
        (["--port", "18080"], {"MODEL_VERSION": "v1"}),  # no MODEL_NAME
        (
            ["--port", "18080"],
            {"MODEL_NAME": "m", "MODEL_VERSION": "v1", BEHAVIOUR_ENV: '{"loadTime": "soon"}'},
        ),
    ],
)
def test_fleet_server_refuses_bad_configuration(
    argv: list[str], env: dict[str, str], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    for name in ("MODEL_NAME", "MODEL_VERSION", BEHAVIOUR_ENV):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert fleet_server.main(argv) == 2
    assert "bad configuration" in caplog.text
