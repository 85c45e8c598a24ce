"""`kubectl modelrollout status` rendering, from statuses the real planner wrote while driving a rollout."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from rich.console import Console

from modelrollout.api import commands
from modelrollout.api.status import Fingerprint, GuardVerdict
from modelrollout.cli import view
from modelrollout.plan import Commands
from tests.support.rollouts import body, judged, rolling_world


def lines(text: str) -> list[str]:
    return text.splitlines()


def section(text: str, title: str) -> list[str]:
    """The lines of one titled block (up to the next blank line), title excluded."""
    all_lines = lines(text)
    start = next(i for i, line in enumerate(all_lines) if line.startswith(title))
    out = []
    for line in all_lines[start + 1 :]:
        if not line:
            break
        out.append(line)
    return out


def test_canary_in_progress_shows_versions_step_and_every_guard_per_slice() -> None:
    world = rolling_world()
    world.run_until(lambda w: w.status.phase == "Canary")
    world.tick()
    text = view.render_text(body(world), world.now)
    head = lines(text)[:9]
    assert head[0] == "ModelRollout ml/recommender"
    assert head[1] == "Phase      Canary for 10s"
    assert head[2].startswith("Stable     v1  s3://models/recommender/v1  fingerprint ")
    assert head[2].endswith("  images server:1")
    assert head[3].startswith("Candidate  v2  s3://models/recommender/v2  fingerprint ")
    assert head[4] == "Strategy   shadow 10s, then canary (10%, 50%)"
    assert head[5] == "Step       1/2, weight 10% of every slice"
    assert head[6] == "Mirror     off"
    assert head[7] == "Failing    0 of 3 slices"
    assert section(text, "Slices") == [
        "SLICE    WEIGHT  VERDICT  SAMPLES S/C  GUARD        STABLE → CANARY  THRESHOLD                      "
        "RESULT  REASON",
        "ios      10%     Pass     1200/400     error-rate   0.011 → 0.01     <= 0.05 (max)                  "
        "Pass    error-rate 0.01 <= max 0.05",
        "                                       error-ratio  0.011 → 0.01     <= 0.0165 (maxRatioToStable)   "
        "Pass    error-ratio 0.01 <= 0.0165 (1.5 x stable 0.011)",
        "android  10%     Pass     1200/400     error-rate   0.011 → 0.01     <= 0.05 (max)                  "
        "Pass    error-rate 0.01 <= max 0.05",
        # the per-segment threshold of android (1.05 x stable) shows, not the guard's 1.5
        "                                       error-ratio  0.011 → 0.01     <= 0.01155 (maxRatioToStable)  "
        "Pass    error-ratio 0.01 <= 0.0115 (1.05 x stable 0.011)",
        "default  10%     Pass     1200/400     error-rate   0.011 → 0.01     <= 0.05 (max)                  "
        "Pass    error-rate 0.01 <= max 0.05",
        "                                       error-ratio  0.011 → 0.01     <= 0.0165 (maxRatioToStable)   "
        "Pass    error-ratio 0.01 <= 0.0165 (1.5 x stable 0.011)",
    ]
    conditions = section(text, "Conditions")
    assert conditions[0].split() == ["TYPE", "STATUS", "REASON", "AGE", "MESSAGE"]
    assert any(line.split()[:3] == ["Progressing", "True", "Canary"] for line in conditions)
    assert lines(text)[-1] == f"Message: {world.status.message}"
    assert "\x1b" not in text, "plain output carries no terminal escapes"
    assert all(line == line.rstrip() for line in lines(text))


def test_shadow_shows_the_mirror_and_no_step() -> None:
    world = rolling_world()
    world.run_until(lambda w: w.status.phase == "Shadow")
    text = view.render_text(body(world), world.now)
    assert "Mirror     100% of every slice to v2" in lines(text)
    assert "Step       - (before the canary)" in lines(text)


def test_rollback_names_the_failing_slice_values_threshold_and_evidence() -> None:
    world = rolling_world()
    world.run_until(lambda w: w.status.phase == "Canary")
    world.script = lambda w: judged(w, {"android": 0.08})
    world.tick()
    assert world.status.phase == "RolledBack"
    text = view.render_text(body(world), world.now)
    assert "Phase      RolledBack for 5s" in lines(text)
    assert "Step       reached 1/2; weight now 0%" in lines(text)
    assert "Failing    1 of 3 slices" in lines(text)
    assert "Inspect    v2 stays up for 9m55s for inspection" in lines(text)
    slices = section(text, "Slices")
    assert slices[3].split()[:9] == [
        "android",
        "0%",
        "Fail",
        "1200/400",
        "error-rate",
        "0.011",
        "→",
        "0.08",
        "<=",
    ]
    assert slices[3].endswith("Fail    error-rate 0.08 > max 0.05")
    assert slices[4].endswith(
        "<= 0.01155 (maxRatioToStable)  Fail    error-ratio 0.08 > 0.0115 (1.05 x stable 0.011)"
    )
    history = section(text, "History")
    assert history[0].split() == ["AGE", "PHASE", "REASON", "STEP", "WEIGHT", "MESSAGE", "/", "EVIDENCE"]
    rollback = next(i for i, line in enumerate(history) if "GuardFailed" in line)
    assert history[rollback].split()[:5] == ["5s", "RolledBack", "GuardFailed", "1", "0%"]
    assert history[rollback + 1].strip() == (
        "↳ error-rate: 0.011 → 0.08 vs <= 0.05 (max): Fail: error-rate 0.08 > max 0.05"
    )
    assert lines(text)[-1].startswith("Message: slice android: ")
    assert lines(text)[-1].endswith("rolled back to v1")


def test_after_promotion_the_previous_version_is_shown_warm_with_its_deadline() -> None:
    world = rolling_world()
    world.run_until(lambda w: w.status.phase == "Succeeded" and w.status.stable_version == "v2")
    text = view.render_text(body(world), world.now)
    warm_until = world.status.previous_warm_until
    assert warm_until is not None
    previous = next(line for line in lines(text) if line.startswith("Previous"))
    assert previous.startswith("Previous   v1  s3://models/recommender/v1  fingerprint ")
    assert previous.endswith(
        f"(kept warm until {warm_until.strftime('%Y-%m-%dT%H:%M:%SZ')}, 14m55s left: `undo` is fast)"
    )
    assert "Candidate  -" in lines(text)
    assert "History (last 5 of 10, newest last)" in lines(text)
    later = view.render_text(body(world), world.now + timedelta(minutes=20))
    assert f"(scaled down at {warm_until.strftime('%Y-%m-%dT%H:%M:%SZ')})" in later


def test_paused_shows_the_phase_it_holds() -> None:
    world = rolling_world()
    world.run_until(lambda w: w.status.phase == "Canary")
    world.commands = Commands(paused=True)
    world.tick()
    text = view.render_text(body(world), world.now)
    assert lines(text)[1] == "Phase      Paused (in Canary) for 5s"
    assert "Step       1/2, weight 10% of every slice" in lines(text)


def test_a_status_behind_the_spec_says_so_and_is_not_finished() -> None:
    world = rolling_world()
    world.run_until(lambda w: w.status.phase == "Succeeded" and w.status.stable_version == "v2")
    stored = body(world, generation=world.generation + 1)
    text = view.render_text(stored, world.now)
    assert (
        f"Observed   generation {world.generation} of {world.generation + 1} "
        "(the operator has not acted on the latest spec yet)"
    ) in lines(text)
    assert not view.parse(stored).finished
    assert view.parse(body(world)).finished


def test_no_status_yet_and_unreadable_status() -> None:
    world = rolling_world()
    stored = body(world)
    stored.pop("status")
    text = view.render_text(stored, world.now)
    assert lines(text)[1] == "Phase      - (no status yet: the operator has not reconciled this rollout)"
    assert lines(text)[-1] == "Message: -"
    stored["status"] = {"phase": "Exploded", "message": "from a newer operator"}
    text = view.render_text(stored, world.now)
    assert any(
        line.startswith("Warning: the status cannot be read by this plugin: status.phase: ")
        for line in lines(text)
    )
    assert lines(text)[-1] == "Message: from a newer operator"


def test_terminal_rendering_uses_the_same_content() -> None:
    world = rolling_world()
    world.run_until(lambda w: w.status.phase == "Canary")
    console = Console(width=200, force_terminal=True, color_system="standard", record=True)
    console.print(view.build(body(world), world.now))
    exported = console.export_text()
    assert "Canary for" in exported
    assert "error-ratio" in exported
    assert "Message: " in exported


def test_formatters() -> None:
    assert [view.age(s) for s in (0, 45, 60, 200, 3600, 3660, 86400, 90000)] == [
        "0s",
        "45s",
        "1m",
        "3m20s",
        "1h",
        "1h1m",
        "1d",
        "1d1h",
    ]
    assert view.short_image("ghcr.io/example/server@sha256:" + "ab" * 32) == "server@sha256:abababababab"
    assert view.short_image("registry:5000/team/server:1.2") == "server:1.2"
    printed = Fingerprint(images=["a/b:1"], model_uri="s3://m", environment="cuda12", template_hash="f" * 64)
    assert view.short_fingerprint(printed) == "fingerprint ffffffffffff  images b:1  env cuda12"
    assert view.number(None) == "-"
    assert view.number(float("nan")) == "NaN"
    assert view.number(0.0123456) == "0.01235"
    minimum = GuardVerdict(name="auc", metric="auc", verdict="Pass", threshold=0.9, bound="min")
    assert view.threshold(minimum) == ">= 0.9 (min)"
    sequential = GuardVerdict(name="s", metric="errorRate", verdict="Inconclusive", bound="sequential")
    assert view.threshold(sequential) == "sequential"
    assert view.since(None, datetime.now(UTC)) == "-"


def test_commands_the_operator_has_not_acted_on_are_shown() -> None:
    world = rolling_world()
    world.run_until(lambda w: w.status.phase == "Canary")
    notes = {commands.PAUSED: "true", commands.PROMOTE: "full:2026-11-21T12:00:00Z-abcdef"}
    text = view.render_text(body(world, annotations=notes), world.now)
    assert (
        "Commands   pause requested (not in effect yet); promote full:2026-11-21T12:00:00Z-abcdef not "
        "acknowledged yet"
    ) in lines(text)
    world.commands = Commands(paused=True, promote="full:2026-11-21T12:00:00Z-abcdef", promote_full=True)
    world.tick()
    assert world.status.phase == "Paused"
    text = view.render_text(body(world, annotations=notes), world.now)
    assert "Commands   paused" in lines(text)
    assert "Commands" not in view.render_text(body(world), world.now)
