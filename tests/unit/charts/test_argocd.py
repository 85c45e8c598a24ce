"""The Argo CD files users merge: the argocd-cm example carries the chart's health check and resource actions
verbatim, and each script exists once. (What Argo CD makes of them is tested with Argo CD's own code in
tests/integration/ecosystem.)"""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.support.verdicts import ACTIONS_DIR, ARGOCD_CM, ARGOCD_DIR, HEALTH_SCRIPT

REPO = Path(__file__).resolve().parents[3]
EXAMPLES = REPO / "examples" / "argocd"
HEALTH_KEY = "resource.customizations.health.modelrollout.io_ModelRollout"
ACTIONS_KEY = "resource.customizations.actions.modelrollout.io_ModelRollout"
ACTIONS = ["promote", "promote-full", "abort", "pause", "resume", "retry"]
REINDENT = "re-indent the script under its key in examples/argocd/argocd-cm.yaml after changing it"


def config_map() -> dict[str, str]:
    found = yaml.safe_load(ARGOCD_CM.read_text())
    assert found["kind"] == "ConfigMap"
    assert (found["metadata"]["name"], found["metadata"]["namespace"]) == ("argocd-cm", "argocd")
    assert found["metadata"]["labels"]["app.kubernetes.io/part-of"] == "argocd", "Argo CD reads only this"
    data: dict[str, str] = found["data"]
    return data


def test_argocd_cm_embeds_the_health_script_verbatim() -> None:
    assert config_map()[HEALTH_KEY] == HEALTH_SCRIPT.read_text(), f"health.lua: {REINDENT}"


def test_argocd_cm_embeds_every_action_verbatim() -> None:
    actions = yaml.safe_load(config_map()[ACTIONS_KEY])
    assert actions["discovery.lua"] == (ACTIONS_DIR / "discovery.lua").read_text(), (
        f"discovery.lua: {REINDENT}"
    )
    assert [d["name"] for d in actions["definitions"]] == ACTIONS
    for definition in actions["definitions"]:
        script = ACTIONS_DIR / definition["name"] / "action.lua"
        assert definition["action.lua"] == script.read_text(), f"{script.relative_to(REPO)}: {REINDENT}"


def test_each_script_has_one_copy() -> None:
    copies = []
    for top in REPO.iterdir():
        if top.is_dir() and not top.name.startswith("."):  # not .venv, .sandbox, .git
            copies += sorted(p.relative_to(REPO) for p in top.glob("**/*.lua"))
    expected = (
        [HEALTH_SCRIPT] + [ACTIONS_DIR / "discovery.lua"] + [ACTIONS_DIR / a / "action.lua" for a in ACTIONS]
    )
    assert sorted(copies) == sorted(p.relative_to(REPO) for p in expected)
    assert all(p.is_relative_to(ARGOCD_DIR) for p in expected)


def test_the_application_ignores_only_the_operators_routes_and_keeps_them_on_sync() -> None:
    app = yaml.safe_load((EXAMPLES / "application.yaml").read_text())
    assert app["kind"] == "Application"
    assert "RespectIgnoreDifferences=true" in app["spec"]["syncPolicy"]["syncOptions"]
    [entry] = app["spec"]["ignoreDifferences"]
    assert (entry["group"], entry["kind"]) == ("networking.istio.io", "VirtualService")
    assert entry["jqPathExpressions"] == ['.spec.http[] | select(.name | startswith("modelrollout-"))']
    assert entry["jsonPointers"] == ["/metadata/annotations/modelrollout.io~1rollout"]
    docs = (REPO / "docs" / "operations.md").read_text()
    assert entry["jqPathExpressions"][0] in docs
