"""The plugin's arguments and commands against an in-memory API (merge patches applied as the server would)."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml

from modelrollout.api import commands
from modelrollout.cli import kubectl
from modelrollout.plan import Commands
from tests.support.fake_kube import FakeKube
from tests.support.rollouts import body, rolling_world

ID = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ-[0-9a-f]{6}$")


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeKube]:
    kube = FakeKube()

    async def connect(kubeconfig: str | None = None, context: str | None = None) -> FakeKube:
        return kube

    monkeypatch.setattr(kubectl, "connect", connect)
    monkeypatch.setattr(kubectl, "default_namespace", lambda kubeconfig, context: "ml")
    monkeypatch.setattr(kubectl, "POLL_SECONDS", 0.01)
    monkeypatch.setattr(kubectl, "WATCH_POLL_SECONDS", 0.01)
    yield kube
    assert kube.closed or not kube.count("get", "modelrollout")


def reacts(kube: FakeKube, operator: Callable[[dict[str, Any]], None]) -> None:
    """Stands in for the operator: `operator` sees the stored rollout after each patch (replacing any earlier one)."""
    kube.after[("patch", "modelrollout")] = [lambda k: operator(k.rollouts[("ml", "recommender")])]


def store(kube: FakeKube, stored: dict[str, Any]) -> dict[str, Any]:
    stored["metadata"].setdefault("resourceVersion", "1")
    kube.rollouts[(stored["metadata"]["namespace"], stored["metadata"]["name"])] = stored
    return stored


def cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = kubectl.main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def in_phase(phase: str) -> dict[str, Any]:
    world = rolling_world()
    world.run_until(lambda w: w.status.phase == phase)
    return body(world)


def annotations(kube: FakeKube) -> dict[str, str]:
    return dict(kube.rollouts[("ml", "recommender")]["metadata"].get("annotations") or {})


# Arguments ------------------------------------------------------------------------------------------------------
def test_connection_flags_go_before_or_after_the_command() -> None:
    parser = kubectl.build_parser()
    before = parser.parse_args(["-n", "ml", "--context", "prod", "status", "recommender"])
    after = parser.parse_args(
        ["status", "recommender", "-n", "ml", "--kubeconfig", "/k", "--context", "prod"]
    )
    plain = parser.parse_args(["status", "recommender"])
    assert (before.namespace, before.context, before.kubeconfig) == ("ml", "prod", None)
    assert (after.namespace, after.context, after.kubeconfig) == ("ml", "prod", "/k")
    assert (plain.namespace, plain.context, plain.kubeconfig) == (None, None, None)


def test_flags_of_each_command() -> None:
    parser = kubectl.build_parser()
    status = parser.parse_args(["status", "r", "--watch", "-o", "yaml", "--timeout", "2m"])
    assert (status.watch, status.output, status.timeout, status.history) == (True, "yaml", 120.0, 5)
    promote = parser.parse_args(["promote", "r", "--full", "--wait", "--timeout", "90"])
    assert (promote.full, promote.wait, promote.timeout, promote.force) == (True, True, 90.0, False)
    assert parser.parse_args(["abort", "r"]).timeout == 60.0
    assert parser.parse_args(["undo", "r", "--force"]).force is True
    lint = parser.parse_args(["lint", "a.yaml", "b.yaml", "--strict", "-o", "json"])
    assert (lint.files, lint.strict, lint.output) == (["a.yaml", "b.yaml"], True, "json")


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["status"],
        ["frobnicate", "r"],
        ["status", "r", "-o", "wide"],
        ["promote", "r", "--timeout", "soon"],
        ["lint"],
    ],
)
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert kubectl.main(argv) == 2
    assert "usage: kubectl modelrollout" in capsys.readouterr().err


def test_version() -> None:
    code, out, _ = cli("version")
    assert (code, out) == (0, "kubectl-modelrollout 0.1.0 (API modelrollout.io/v1alpha1)\n")
    code, out, _ = cli("version", "-o", "json")
    assert json.loads(out) == {"clientVersion": "0.1.0", "apiVersion": "modelrollout.io/v1alpha1"}


def test_command_ids_are_rfc3339_with_a_random_suffix() -> None:
    moment = datetime(2026, 11, 21, 12, 0, 5, tzinfo=UTC)
    first, second = kubectl.new_command_id(moment), kubectl.new_command_id(moment)
    assert first.startswith("2026-11-21T12:00:05Z-")
    assert ID.match(first)
    assert first != second


def test_a_kubeconfig_that_cannot_be_read_is_reported(tmp_path: Any) -> None:
    code, _, err = cli("status", "r", "--kubeconfig", str(tmp_path / "nope"))
    assert code == 1
    assert err.startswith("error: cannot load the kubeconfig: ")


# status -------------------------------------------------------------------------------------------------------------
def test_status_of_a_missing_rollout(fake: FakeKube) -> None:
    code, out, err = cli("status", "nothing")
    assert (code, out) == (1, "")
    assert err == 'error: modelrollout "nothing" not found in namespace "ml"\n'


def test_status_outputs(fake: FakeKube) -> None:
    stored = store(fake, in_phase("Canary"))
    code, out, _ = cli("status", "recommender", "-o", "json")
    assert (code, json.loads(out)) == (0, stored)
    code, out, _ = cli("status", "recommender", "-o", "yaml")
    assert (code, yaml.safe_load(out)) == (0, stored)
    code, out, _ = cli("status", "recommender")
    assert code == 0
    assert out.splitlines()[0] == "ModelRollout ml/recommender"
    assert out.splitlines()[1].startswith("Phase      Canary for ")


@pytest.mark.parametrize(("final", "expected"), [("Succeeded", 0), ("RolledBack", 1)])
def test_watch_follows_changes_until_a_final_phase(fake: FakeKube, final: str, expected: int) -> None:
    world = rolling_world()
    world.run_until(lambda w: w.status.phase == "Shadow")
    store(fake, body(world))

    def operator_ticks(kube: FakeKube) -> None:
        if kube.count("get", "modelrollout") % 3 == 0 and world.status.phase not in (
            "Succeeded",
            "RolledBack",
        ):
            if final == "RolledBack" and world.status.phase == "Canary":
                world.commands = Commands(abort="stop")
            world.tick()
            updated = body(world, resourceVersion=str(kube.count("get", "modelrollout")))
            kube.rollouts[("ml", "recommender")] = updated

    fake.on("get", "modelrollout", operator_ticks)
    code, out, _ = cli("status", "recommender", "--watch")
    assert code == expected
    phases = [line.split()[1] for line in out.splitlines() if line.startswith("Phase ")]
    assert phases[0] == "Shadow"
    assert phases[-1] == final
    assert "Canary" in phases
    code, out, _ = cli("status", "recommender", "--watch", "-o", "json")
    assert code == expected
    assert json.loads(out)["status"]["phase"] == final


def test_watch_gives_up_after_its_timeout(fake: FakeKube) -> None:
    store(fake, in_phase("Canary"))
    code, _, err = cli("status", "recommender", "--watch", "--timeout", "0.05")
    assert code == 1
    assert (
        err
        == 'error: timed out after 0.05s watching modelrollout "recommender" in namespace "ml": phase Canary\n'
    )


# promote, abort, pause, resume ------------------------------------------------------------------------------------
def acknowledging(kube: FakeKube) -> Callable[[dict[str, Any]], None]:
    """An operator that acknowledges promote and abort ids at once (and rolls back on abort)."""

    def react(stored: dict[str, Any]) -> None:
        notes = stored["metadata"].get("annotations") or {}
        status = stored.setdefault("status", {})
        ack = status.setdefault("acknowledged", {})
        if commands.PROMOTE in notes:
            ack["promote"] = notes[commands.PROMOTE]
            status.update(phase="Canary", step=2, canaryWeight=50)
        if commands.ABORT in notes:
            ack["abort"] = notes[commands.ABORT]
            status.update(phase="RolledBack", canaryWeight=0, message="rolled back to v1")
        if commands.RETRY in notes:
            ack["retry"] = notes[commands.RETRY]
            status.update(phase="Pending", step=0, canaryWeight=0, message="retry requested")
        status["phase"] = "Paused" if notes.get(commands.PAUSED) == "true" else status["phase"]

    return react


def test_promote_writes_a_new_id_and_waits_for_its_acknowledgement(fake: FakeKube) -> None:
    store(fake, in_phase("Canary"))
    code, out, err = cli("promote", "recommender")
    assert (code, err) == (0, "")
    value = annotations(fake)[commands.PROMOTE]
    assert ID.match(value)
    assert fake.rollout_patches == [{"metadata": {"annotations": {commands.PROMOTE: value}}}]
    assert (
        out
        == f'promote requested: modelrollout "recommender" in namespace "ml" will advance one step (id {value})\n'
    )

    reacts(fake, acknowledging(fake))
    code, out, err = cli("promote", "recommender", "--full", "--wait")
    full = annotations(fake)[commands.PROMOTE]
    assert full.startswith(commands.FULL_PREFIX)
    assert ID.match(full.removeprefix(commands.FULL_PREFIX))
    assert code == 0
    assert out.splitlines() == [
        f'promote requested: modelrollout "recommender" in namespace "ml" will skip the remaining steps and '
        f"promote v2 (id {full})",
        "acknowledged: phase Canary, step 2/2, weight 50%: every slice passed in shadow for 10s; step 1/2: 10% "
        "of every slice to v2",
    ]
    assert err == f"warning: the earlier promote {value} was not acknowledged yet; this one replaces it\n"


def test_promote_refuses_where_the_operator_would_ignore_it(fake: FakeKube) -> None:
    store(fake, in_phase("Succeeded"))
    code, out, err = cli("promote", "recommender")
    assert (code, out, fake.rollout_patches) == (1, "", [])
    assert err == (
        'error: modelrollout "recommender" in namespace "ml" is Succeeded: the operator promotes only in Shadow, '
        "Canary, Preview or Baking and would ignore this command; use --force to write it anyway\n"
    )
    assert cli("promote", "recommender", "--force")[0] == 0
    assert commands.PROMOTE in annotations(fake)


def test_wait_times_out_without_an_operator(fake: FakeKube) -> None:
    store(fake, in_phase("Shadow"))
    code, _, err = cli("promote", "recommender", "--wait", "--timeout", "0.05")
    value = annotations(fake)[commands.PROMOTE]
    assert code == 1
    assert err == (
        f"error: timed out after 0.05s waiting for the operator to acknowledge promote {value} on modelrollout "
        '"recommender" in namespace "ml" (phase Shadow; is the operator running?)\n'
    )


def test_abort(fake: FakeKube) -> None:
    store(fake, in_phase("Canary"))
    reacts(fake, acknowledging(fake))
    code, out, err = cli("abort", "recommender", "--wait")
    value = annotations(fake)[commands.ABORT]
    assert (code, err) == (0, "")
    assert ID.match(value)
    assert out.splitlines() == [
        f'abort requested: modelrollout "recommender" in namespace "ml" will roll v2 back to stable v1 (id {value})',
        "acknowledged: phase RolledBack, step 1/2: rolled back to v1",
    ]
    code, _, err = cli("abort", "recommender")
    assert code == 1
    assert err == (
        'error: modelrollout "recommender" in namespace "ml" is RolledBack: no rollout in progress to abort; use '
        "--force to write the command anyway\n"
    )


def test_retry_restarts_only_what_failed(fake: FakeKube) -> None:
    store(fake, in_phase("Canary"))
    code, _, err = cli("retry", "recommender")
    assert code == 1
    assert err == (
        'error: modelrollout "recommender" in namespace "ml" is Canary: retry restarts a RolledBack, Blocked or '
        "Failed rollout; use --force to write the command anyway\n"
    )
    rolled_back = in_phase("Canary")
    rolled_back["status"].update(phase="RolledBack", canaryWeight=0)
    store(fake, rolled_back)
    reacts(fake, acknowledging(fake))
    code, out, err = cli("retry", "recommender", "--wait")
    value = annotations(fake)[commands.RETRY]
    assert (code, err) == (0, "")
    assert ID.match(value)
    assert out.splitlines()[0] == (
        f'retry requested: modelrollout "recommender" in namespace "ml" will roll v2 out again from the '
        f"beginning (id {value})"
    )


def test_pause_and_resume_set_and_remove_the_annotation(fake: FakeKube) -> None:
    store(fake, in_phase("Canary"))
    reacts(fake, acknowledging(fake))
    code, out, _ = cli("pause", "recommender", "--wait")
    assert code == 0
    assert annotations(fake) == {commands.PAUSED: "true"}
    assert out.splitlines()[0] == (
        'pause requested: modelrollout "recommender" in namespace "ml" holds its traffic where it is until resumed'
    )
    assert out.splitlines()[1].startswith("now phase Paused")
    fake.rollouts[("ml", "recommender")]["status"]["pausedPhase"] = "Canary"
    reacts(fake, lambda stored: stored["status"].update(phase="Canary", pausedPhase=None))
    code, out, _ = cli("resume", "recommender", "--wait")
    assert code == 0
    assert annotations(fake) == {}
    assert fake.rollout_patches[-1] == {"metadata": {"annotations": {commands.PAUSED: None}}}
    assert out.splitlines() == [
        'resume requested: modelrollout "recommender" in namespace "ml" continues in Canary',
        "now phase Canary, step 1/2, weight 10%: every slice passed in shadow for 10s; step 1/2: 10% of every "
        "slice to v2",
    ]


def test_pause_in_a_finished_phase_pauses_the_next_rollout(fake: FakeKube) -> None:
    store(fake, in_phase("Succeeded"))
    code, out, _ = cli("pause", "recommender", "--wait", "--timeout", "0.05")
    assert code == 0
    assert annotations(fake) == {commands.PAUSED: "true"}
    assert out.splitlines()[1] == (
        'modelrollout "recommender" in namespace "ml" is Succeeded: nothing is in progress; the next rollout '
        "pauses once its candidate is warming"
    )


# undo -------------------------------------------------------------------------------------------------------------
def promoted(**metadata: Any) -> dict[str, Any]:
    world = rolling_world()
    world.set_version("v2", schema={"version": 2, "features": [{"name": "user_id", "type": "string"}]})
    world.run_until(lambda w: w.status.phase == "Succeeded" and w.status.stable_version == "v2")
    stored = body(world, **metadata)
    # the previous version was promoted long ago in this world: move the warm deadline to the real clock
    stored["status"]["previousWarmUntil"] = (datetime.now(UTC) + timedelta(minutes=10)).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
    return stored


def test_undo_patches_spec_model_back_to_the_previous_version(fake: FakeKube) -> None:
    stored = store(fake, promoted())
    assert stored["spec"]["model"]["schema"]["version"] == 2
    code, out, err = cli("undo", "recommender")
    assert (code, err) == (0, "")
    assert fake.rollout_patches == [
        {
            "metadata": {"resourceVersion": "1"},
            "spec": {
                "model": {"version": "v1", "uri": "s3://models/recommender/v1", "schema": None},
            },
        }
    ]
    model = fake.rollouts[("ml", "recommender")]["spec"]["model"]
    assert model == {"name": "recommender", "version": "v1", "uri": "s3://models/recommender/v1"}
    lines = out.splitlines()
    assert lines[0] == (
        'undo: spec.model of modelrollout "recommender" in namespace "ml" set back to v1 '
        "(s3://models/recommender/v1) from v2"
    )
    assert lines[1].startswith(
        "the operator now rolls v1 out from stable v2 with the rollout's strategy; its "
    )
    assert lines[2] == (
        "note: if spec.model of recommender comes from Git (Argo CD, Flux), set version v1 there too: otherwise "
        "the next sync puts v2 back and starts that rollout again"
    )
    code, out, _ = cli("undo", "recommender")
    assert (code, out) == (
        0,
        'modelrollout "recommender" in namespace "ml": spec.model.version is already v1; nothing to do\n',
    )


def test_undo_copies_the_previous_schema_exactly(fake: FakeKube) -> None:
    stored = promoted()
    stored["status"]["previous"]["schema"] = {"version": 1, "features": [], "extraFeatures": "reject"}
    store(fake, stored)
    assert cli("undo", "recommender")[0] == 0
    assert fake.rollouts[("ml", "recommender")]["spec"]["model"]["schema"] == {
        "version": 1,
        "features": [],
        "extraFeatures": "reject",
    }


def test_undo_warns_about_argo_cd_when_it_tracks_the_object(fake: FakeKube) -> None:
    store(
        fake,
        promoted(
            annotations={"argocd.argoproj.io/tracking-id": "ml:modelrollout.io/ModelRollout:ml/recommender"}
        ),
    )
    code, _, err = cli("undo", "recommender")
    assert code == 0
    assert err.startswith(
        "warning: recommender is tracked by Argo CD (argocd.argoproj.io/tracking-id: "
        "ml:modelrollout.io/ModelRollout:ml/recommender); if spec.model of recommender comes from Git"
    )


def test_undo_refusals(fake: FakeKube) -> None:
    store(fake, in_phase("Canary"))
    code, _, err = cli("undo", "recommender")
    assert code == 1
    assert err == (
        'error: modelrollout "recommender" in namespace "ml" has no previous version to go back to '
        "(status.previous is empty: no version has been promoted over an earlier one)\n"
    )
    cold = promoted()
    cold["status"]["previousWarmUntil"] = "2020-01-01T00:00:00Z"
    store(fake, cold)
    code, _, err = cli("undo", "recommender")
    assert code == 1
    assert err == (
        'error: modelrollout "recommender" in namespace "ml": the previous version v1 is no longer kept warm '
        "(scaled down at 2020-01-01T00:00:00Z, see status.previousWarmUntil); going back now is a full, cold "
        "rollout of it. Use --force to do it anyway\n"
    )
    assert fake.rollout_patches == []
    assert cli("undo", "recommender", "--force")[0] == 0
    assert fake.rollouts[("ml", "recommender")]["spec"]["model"]["version"] == "v1"


def test_undo_refuses_during_a_rollout_and_a_concurrent_change_is_reported(fake: FakeKube) -> None:
    stored = promoted()
    stored["status"].update(phase="Canary", candidateVersion="v3")
    store(fake, stored)
    code, _, err = cli("undo", "recommender")
    assert code == 1
    assert err.startswith(
        'error: modelrollout "recommender" in namespace "ml" is rolling out v3 (Canary): use '
        "`kubectl modelrollout abort recommender` to stop it"
    )

    def someone_else_writes(kube: FakeKube) -> None:
        kube.rollouts[("ml", "recommender")]["metadata"]["resourceVersion"] = "99"

    stored["status"].update(phase="Succeeded", candidateVersion=None)
    store(fake, stored)
    fake.on("patch", "modelrollout", someone_else_writes)
    code, _, err = cli("undo", "recommender")
    assert code == 1
    assert err == (
        'error: modelrollout "recommender" in namespace "ml" changed while this command ran; run it again\n'
    )


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_watch_on_a_terminal_redraws_in_place(fake: FakeKube) -> None:
    world = rolling_world()
    world.run_until(lambda w: w.status.phase == "Canary")
    store(fake, body(world))

    def operator_ticks(kube: FakeKube) -> None:
        if world.status.phase != "Succeeded":
            world.tick()
            kube.rollouts[("ml", "recommender")] = body(
                world, resourceVersion=str(kube.count("get", "modelrollout"))
            )

    fake.on("get", "modelrollout", operator_ticks)
    out, err = Terminal(), io.StringIO()
    assert kubectl.main(["status", "recommender", "--watch"], out=out, err=err) == 0
    drawn = out.getvalue()
    assert "\x1b[" in drawn, "a terminal gets colours and cursor movement"
    assert "Succeeded" in drawn
    assert err.getvalue() == ""
    out = Terminal()
    assert kubectl.main(["status", "recommender"], out=out, err=err) == 0
    assert "Succeeded" in out.getvalue()
