"""ServingConfig.from_env: what the operator injects into every generated pod."""

from __future__ import annotations

import json

import pytest

from modelrollout.serving import ServingConfig
from modelrollout.serving.slices import SliceConfigError

SLICES = [{"name": "ios", "match": {"headers": {"x-platform": {"exact": "ios"}}}}]


def test_reads_the_operator_environment() -> None:
    config = ServingConfig.from_env(
        {
            "MODEL_NAME": "recommender",
            "MODEL_VERSION": "v42",
            "MODEL_URI": "s3://models/recommender/v42",
            "MODELROLLOUT_SLICES": json.dumps(SLICES),
            "MODELROLLOUT_PORT": "9001",
            "MODELROLLOUT_READY_PATH": "/v2/models/recommender/ready",
        }
    )
    assert (config.model_name, config.model_version, config.model_uri) == (
        "recommender",
        "v42",
        "s3://models/recommender/v42",
    )
    assert [s.name for s in config.slices] == ["ios"]
    assert config.slices[0].match.headers["x-platform"].exact == "ios"
    assert (config.port, config.ready_path) == (9001, "/v2/models/recommender/ready")


def test_defaults() -> None:
    config = ServingConfig.from_env({"MODEL_NAME": "m", "MODEL_VERSION": "v1"})
    assert (config.model_uri, config.slices, config.port, config.ready_path) == ("", (), 8080, "/ready")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"MODEL_VERSION": "v1"}, "MODEL_NAME"),
        ({"MODEL_NAME": "m"}, "MODEL_VERSION"),
        ({"MODEL_NAME": "m", "MODEL_VERSION": "v1", "MODELROLLOUT_PORT": "http"}, "MODELROLLOUT_PORT"),
        ({"MODEL_NAME": "m", "MODEL_VERSION": "v1", "MODELROLLOUT_PORT": "70000"}, "MODELROLLOUT_PORT"),
        ({"MODEL_NAME": "m", "MODEL_VERSION": "v1", "MODELROLLOUT_READY_PATH": "/live"}, "ready path"),
        ({"MODEL_NAME": "m", "MODEL_VERSION": "v1", "MODELROLLOUT_READY_PATH": "ready"}, "ready path"),
    ],
)
def test_bad_environment_is_named(env: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ServingConfig.from_env(env)


def test_bad_slices_name_the_variable() -> None:
    env = {"MODEL_NAME": "m", "MODEL_VERSION": "v1", "MODELROLLOUT_SLICES": '[{"name": "ios"}]'}
    with pytest.raises(SliceConfigError, match=r"MODELROLLOUT_SLICES: 0\.match: Field required"):
        ServingConfig.from_env(env)
