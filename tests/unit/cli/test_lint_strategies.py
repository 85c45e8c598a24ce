"""`kubectl modelrollout lint` on the blue-green strategy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.specs import manifest
from tests.unit.cli.test_lint import good_spec, run, write


def blue_green(**fields: Any) -> dict[str, Any]:
    spec = good_spec()
    spec["strategy"] = {"blueGreen": {"bake": "30s", **fields}}
    return spec


def test_a_good_blue_green_passes_quietly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(write(tmp_path, manifest(blue_green(preview={"header": "x-preview"}))), capsys=capsys)
    assert (code, out) == (0, [])


def test_a_bake_too_short_to_judge_twice_is_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, manifest(blue_green(bake="5s")))
    code, out, _ = run(path, capsys=capsys)
    assert code == 0
    assert out == [
        f"{path}:1: warning: spec.strategy.blueGreen.bake: 5s is shorter than two analysis intervals (2 x 5s): "
        "the bake can never collect two evaluations and the candidate becomes stable after a single passing one"
    ]


def test_no_guard_judged_in_the_bake_is_an_error_naming_the_bake(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = blue_green()
    for guard in spec["analysis"]["guards"]:
        guard["phases"] = ["shadow"]
    spec["strategy"]["shadow"] = {"duration": "20s"}
    code, out, _ = run(write(tmp_path, manifest(spec)), capsys=capsys)
    assert code == 1
    assert any("no guard is judged in the blue-green bake" in line for line in out), out


def test_canary_and_blue_green_together_are_refused_like_admission(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = blue_green()
    spec["strategy"]["canary"] = {"steps": [{"weight": 10}]}
    path = write(tmp_path, manifest(spec))
    code, out, _ = run(path, capsys=capsys)
    assert code == 1
    assert out == [
        f"{path}:1: error: spec.strategy: set exactly one delivery strategy: canary, blueGreen or experiment"
    ]
