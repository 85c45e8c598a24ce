"""The Argo CD health check and resource actions, run by Argo CD's own code (util/lua of argo-cd v3.2.12, read
from the argocd-cm example through Argo CD's settings manager), on objects the real planner produced."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from modelrollout.api import commands
from tests.support.rollout_states import (
    AWAITING,
    EXPECTED,
    NO_STATUS,
    PREVIEW_AWAITING,
    REFUSED,
    planner_states,
)
from tests.support.verdicts import (
    HEALTH_SCRIPT,
    UpstreamError,
    argocd_actions,
    argocd_actions_all,
    argocd_health,
    argocd_run_action,
    config_map_with,
)

pytestmark = pytest.mark.integration
HEALTH_KEY = "resource.customizations.health.modelrollout.io_ModelRollout"
ACTION_ID = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ-argocd-\d+"
# Where each action is offered (enabled), as docs/operations.md says; the rest of the states show it disabled.
OFFERED = {
    "promote": {"Shadow", "Canary", AWAITING, "Preview", PREVIEW_AWAITING, "Baking", "Experiment"},
    "promote-full": {"Shadow", "Canary", AWAITING, "Preview", PREVIEW_AWAITING, "Baking", "Experiment"},
    "abort": {
        "Pending",
        "Warming",
        "Shadow",
        "Canary",
        AWAITING,
        "Preview",
        PREVIEW_AWAITING,
        "Baking",
        "Experiment",
        "Promoting",
        "Paused",
        NO_STATUS,
    },
    "pause": set(EXPECTED) - {"Paused"},
    "resume": {"Paused"},
    "retry": {"RolledBack", "Blocked", "Failed"},
}


@pytest.fixture(scope="module")
def states() -> dict[str, dict[str, Any]]:
    found = planner_states()
    for index, obj in enumerate(found.values()):
        obj["metadata"]["resourceVersion"] = str(4000 + index)
    return found


# Health ------------------------------------------------------------------------------------------------------
def test_a_phase_from_a_newer_operator_is_unknown_not_healthy() -> None:
    obj = {
        "apiVersion": "modelrollout.io/v1alpha1",
        "kind": "ModelRollout",
        "metadata": {"name": "r", "namespace": "ml", "generation": 1},
        "status": {"phase": "Hibernating", "observedGeneration": 1},
    }
    assert (argocd_health(obj).status, argocd_health(obj).message) == ("Unknown", "Unknown phase Hibernating")


def test_argo_cd_has_no_string_library_so_a_script_using_it_fails(
    states: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    """Why the script is tested here and not in a Lua of our own: Argo CD runs health checks without Lua's
    string and math libraries, so an edit using them would break in Argo CD alone."""
    obj = states["Succeeded"]
    for script in (
        'return {status = "Healthy", message = string.format("%s", obj.status.phase)}',
        'return {status = "Healthy", message = obj.status.phase:lower()}',
        'return {status = "Healthy", message = tostring(math.floor(1.5))}',
    ):
        with pytest.raises(UpstreamError):
            argocd_health(obj, config_map_with({HEALTH_KEY: script}, tmp_path))
    shipped = config_map_with({HEALTH_KEY: HEALTH_SCRIPT.read_text()}, tmp_path)
    assert argocd_health(obj, shipped).status == "Healthy"


def test_argo_cd_shows_a_health_status_it_does_not_know_as_unknown(
    states: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    obj = states["Succeeded"]
    odd = config_map_with({HEALTH_KEY: 'return {status = "Fine", message = "all good"}'}, tmp_path)
    verdict = argocd_health(obj, odd)
    assert (verdict.status, verdict.message) == ("Unknown", "Lua returned an invalid health status")


# Actions -----------------------------------------------------------------------------------------------------
def test_every_action_is_offered_in_the_states_the_docs_name(states: dict[str, dict[str, Any]]) -> None:
    for state, actions in zip(states, argocd_actions_all(list(states.values())), strict=True):
        assert set(actions) == set(OFFERED), state
        enabled = {name for name, action in actions.items() if not action.disabled}
        assert enabled == {name for name, where in OFFERED.items() if state in where}, state


@pytest.mark.parametrize(
    ("action", "annotation", "value"),
    [
        ("promote", commands.PROMOTE, ACTION_ID),
        ("promote-full", commands.PROMOTE, re.escape(commands.FULL_PREFIX) + ACTION_ID),
        ("abort", commands.ABORT, ACTION_ID),
        ("retry", commands.RETRY, ACTION_ID),
        ("pause", commands.PAUSED, "true"),
    ],
)
def test_an_action_sets_exactly_the_annotation_the_kubectl_plugin_sets(
    states: dict[str, dict[str, Any]], action: str, annotation: str, value: str
) -> None:
    obj = states["Canary"]
    patch = argocd_run_action(obj, action)
    assert patch is not None
    assert set(patch) == {"metadata"}, patch
    assert set(patch["metadata"]) == {"annotations"}, patch
    [(key, written)] = patch["metadata"]["annotations"].items()
    assert key == annotation
    assert re.fullmatch(value, written), written
    if action != "pause":
        assert written.endswith(f"-argocd-{obj['metadata']['resourceVersion']}")
    parsed = {
        commands.PROMOTE: commands.promote_id,
        commands.ABORT: commands.abort_id,
        commands.RETRY: commands.retry_id,
        commands.PAUSED: commands.is_paused,
    }[annotation]({annotation: written})
    assert parsed == {
        "promote": (written, False),
        "promote-full": (written, True),
        "pause": True,
    }.get(action, written), "the operator reads the command as the plugin's"


def test_resume_removes_the_pause_annotation_and_keeps_the_others(states: dict[str, dict[str, Any]]) -> None:
    obj = states["Paused"]
    obj = {**obj, "metadata": {**obj["metadata"], "annotations": {commands.PAUSED: "true", "team": "ml"}}}
    assert argocd_run_action(obj, "resume") == {"metadata": {"annotations": {commands.PAUSED: None}}}
    only = {**obj, "metadata": {**obj["metadata"], "annotations": {commands.PAUSED: "true"}}}
    assert argocd_run_action(only, "resume") == {"metadata": {"annotations": {commands.PAUSED: None}}}
    assert argocd_actions(only)["resume"].disabled is False


def test_an_action_on_an_object_without_annotations_adds_them(states: dict[str, dict[str, Any]]) -> None:
    obj = states[REFUSED]
    assert "annotations" not in obj["metadata"]
    patch = argocd_run_action(obj, "pause")
    assert patch == {"metadata": {"annotations": {commands.PAUSED: "true"}}}
    assert argocd_run_action(obj, "resume") is None, "nothing to remove: Argo CD sends no patch"
