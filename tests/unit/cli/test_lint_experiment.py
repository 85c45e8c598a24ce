"""`kubectl modelrollout lint` on the A/B experiment."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.specs import manifest
from tests.unit.cli.test_lint import good_spec, run, write

FIELD = "spec.strategy.experiment"


def ab(**fields: Any) -> dict[str, Any]:
    spec = good_spec()
    spec["strategy"] = {
        "experiment": {
            "assignment": {"header": "x-user-id"},
            "metric": {"successes": "model_conversions_total"},
            "minimumDetectableEffect": 0.1,
            "baselineRate": 0.1,
            **fields,
        }
    }
    return spec


def test_a_good_experiment_passes_quietly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(write(tmp_path, manifest(ab(expectedTrialsPerHour=5000))), capsys=capsys)
    assert (code, out) == (0, [])


def test_an_experiment_without_a_sticky_key_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(write(tmp_path, manifest(ab(assignment={"candidatePercent": 50}))), capsys=capsys)
    assert code != 0
    assert any("set exactly one sticky key: header or cookie" in line for line in out), out


def test_a_sample_the_traffic_cannot_reach_in_max_duration_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, manifest(ab(expectedTrialsPerHour=1000, maxDuration="24h")))
    code, out, _ = run(path, capsys=capsys)
    assert code != 0
    assert out == [
        f"{path}:1: error: {FIELD}.maxDuration: the cap of 29498 trials per arm takes 29.5h at 1000 trials per "
        "hour, longer than maxDuration 24h: the traffic cannot reach the sample, so the experiment can only end "
        "without a significant result"
    ]


def test_a_cap_below_the_planned_sample_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(write(tmp_path, manifest(ab(maxTrialsPerArm=5000))), capsys=capsys)
    assert code != 0
    assert any(f"{FIELD}.maxTrialsPerArm: 5000 trials per arm is below the 14749" in line for line in out), (
        out
    )


def test_no_baseline_rate_is_a_warning(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = ab()
    del spec["strategy"]["experiment"]["baselineRate"]
    code, out, _ = run(write(tmp_path, manifest(spec)), capsys=capsys)
    assert code == 0
    assert any(f"warning: {FIELD}.baselineRate" in line for line in out), out
