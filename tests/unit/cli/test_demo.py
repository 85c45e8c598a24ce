"""`modelrollout demo --provider`: the scenario runs on the chosen traffic provider, and a scenario that cannot
move there fails with its cause, not a traceback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from modelrollout.cli import main as modelrollout
from modelrollout.sandbox import demo

REPO = Path(__file__).resolve().parents[3]
HEALTHY = REPO / "examples" / "scenarios" / "healthy.yaml"


class Recorded:
    """Stands in for the sandbox run: records the scenario the runner was built with."""

    def __init__(self) -> None:
        self.runners: list[demo.DemoRunner] = []

    def __call__(self, scenario: Path, **kwargs: Any) -> int:
        self.runners.append(demo.DemoRunner(scenario, sandbox=object(), live=False, **kwargs))  # type: ignore[arg-type]
        return 0


@pytest.mark.parametrize(("argv", "kind"), [([], "istio"), (["--provider", "gatewayapi"], "gatewayAPI")])
def test_demo_runs_the_scenario_on_the_chosen_provider(
    monkeypatch: pytest.MonkeyPatch, argv: list[str], kind: str
) -> None:
    recorded = Recorded()
    monkeypatch.setattr(demo, "run_demo", recorded)
    assert modelrollout.main(["demo", "--scenario", str(HEALTHY), *argv]) == 0
    (runner,) = recorded.runners
    assert runner.scenario.rollout.spec.traffic.wire().keys() == {kind}


def test_demo_refuses_an_unknown_provider(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        modelrollout.main(["demo", "--scenario", str(HEALTHY), "--provider", "linkerd"])
    assert "invalid choice: 'linkerd'" in capsys.readouterr().err


def test_demo_names_why_a_scenario_cannot_move(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scenario = tmp_path / "gateway-bound.yaml"
    scenario.write_text(
        HEALTHY.read_text().replace(
            "virtualService: recommender", "virtualService: recommender\n        gateways: [ingress]"
        )
    )
    assert modelrollout.main(["demo", "--scenario", str(scenario), "--provider", "gatewayapi"]) == 1
    assert "a gateway-bound scenario has no mesh HTTPRoute" in capsys.readouterr().out
