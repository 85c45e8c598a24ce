"""`kubectl modelrollout lint`: admission rules and semantic checks, with exact lines and exit codes."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelrollout.cli import kubectl
from modelrollout.cli.lint import lint_text
from tests.support.specs import manifest
from tests.support.world import spec_dict

SCHEMA = {"version": 1, "features": [{"name": "user_id", "type": "string"}]}


def good_spec() -> dict[str, Any]:
    """A spec with nothing to warn about: a schema, pauses of at least two intervals."""
    spec = spec_dict()
    spec["model"]["schema"] = copy.deepcopy(SCHEMA)
    return spec


def write(tmp_path: Path, *documents: dict[str, Any], name: str = "rollout.yaml") -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump_all(documents, sort_keys=False))
    return str(path)


def run(*argv: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str], str]:
    code = kubectl.main(["lint", *argv])
    captured = capsys.readouterr()
    return code, captured.out.splitlines(), captured.err


def test_a_good_file_passes_quietly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, manifest(good_spec()))
    code, out, err = run(path, capsys=capsys)
    assert (code, out) == (0, [])
    assert err == "1 ModelRollout checked: 0 errors, 0 warnings\n"


def test_admission_errors_name_file_document_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = good_spec()
    bad["strategy"]["canary"]["steps"] = [{"weight": 50, "pause": "1m"}, {"weight": 10, "pause": "1m"}]
    bad["analysis"]["guards"][0].pop("max")
    other = good_spec()
    other["replicas"] = 0
    twins = good_spec()
    twins["slices"][1]["name"] = "ios"
    config_map = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {}}
    path = write(tmp_path, config_map, manifest(bad), manifest(other, "second"), manifest(twins, "third"))
    code, out, err = run(path, capsys=capsys)
    assert code == 1
    assert out == [
        f"{path}:2: error: spec.strategy.canary.steps: step weights must strictly ascend",
        f"{path}:2: error: spec.analysis.guards[0]: a guard needs at least one threshold: max, min, "
        "maxRatioToStable, maxDeltaToStable, minRatioToStable or minDeltaToStable",
        f"{path}:3: error: spec.replicas: Input should be greater than or equal to 1",
        f"{path}:4: error: spec.slices: slice names must be unique",
    ]
    assert err == "3 ModelRollouts checked: 4 errors, 0 warnings\n"


def test_semantic_warnings_pass_unless_strict(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = spec_dict()  # no schema
    spec["analysis"]["interval"] = "10s"
    spec["analysis"]["window"] = "5s"
    spec["strategy"]["canary"]["steps"][0]["pause"] = "15s"
    spec["analysis"]["guards"].append(
        {"name": "shift", "metric": "predictionPSI", "max": 0.2, "minSamples": 50, "phases": ["canary"]}
    )
    path = write(tmp_path, manifest(spec))
    code, out, _ = run(path, capsys=capsys)
    assert code == 0
    assert out == [
        f"{path}:1: warning: spec.model.schema: no serving schema: rollback safety (rollbackSafety: block) "
        "cannot be checked, so a rollback to a version that cannot read the candidate's requests is not caught",
        f"{path}:1: warning: spec.strategy.shadow.duration: 10s is shorter than two analysis intervals "
        "(2 x 10s): shadow can never collect two evaluations and ends after a single passing one",
        f"{path}:1: warning: spec.strategy.canary.steps[0].pause: 15s is shorter than two analysis intervals "
        "(2 x 10s): step 1 (10%) can never collect two evaluations and advances after a single passing one",
        f"{path}:1: warning: spec.strategy.canary.steps[1].pause: 10s is shorter than two analysis intervals "
        "(2 x 10s): step 2 (50%) can never collect two evaluations and advances after a single passing one",
        f"{path}:1: warning: spec.analysis.window: window 5s is shorter than interval 10s: requests between "
        "two windows are never judged (a burst of errors can go unseen)",
        f"{path}:1: warning: spec.analysis.guards[2].minSamples: 50 samples is too few for shift "
        "(predictionPSI): the score histogram has 20 buckets, about 2.5 observations each, and at 50 per "
        "version PSI from sampling noise alone varies by about ±0.25 around 0.76, against max 0.2. "
        "Use at least 200",
    ]
    code, _, err = run("--strict", path, capsys=capsys)
    assert code == 1
    assert err == "1 ModelRollout checked: 0 errors, 6 warnings\n"


def test_unreachable_slices_are_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = good_spec()
    spec["slices"] = [
        {"name": "ios", "match": {"headers": {"x-platform": {"exact": "ios"}}}},
        {
            "name": "ios-na",
            "match": {"headers": {"x-platform": {"exact": "ios"}, "x-region": {"exact": "na"}}},
        },
        {"name": "ios-again", "match": {"headers": {"x-platform": {"exact": "ios"}}}},
        {"name": "beta", "match": {"headers": {"x-user": {"prefix": "beta-"}}}},
        {"name": "beta-eu", "match": {"headers": {"x-user": {"prefix": "beta-eu-"}}}},
        {"name": "web", "match": {"headers": {"user-agent": {"regex": "Mozilla/.*"}}}},
        {"name": "firefox", "match": {"headers": {"user-agent": {"exact": "Mozilla/5.0 Firefox"}}}},
        # reachable: a more specific slice before a general one, and a different header value
        {
            "name": "android-eu",
            "match": {"headers": {"x-platform": {"exact": "android"}, "x-region": {"exact": "eu"}}},
        },
        {"name": "android", "match": {"headers": {"x-platform": {"exact": "android"}}}},
    ]
    path = write(tmp_path, manifest(spec))
    code, out, _ = run(path, capsys=capsys)
    assert code == 1
    tail = (
        "and routes match in order; it gets no traffic, so its verdict stays Inconclusive and the rollout "
        "never completes. Put the more specific slice first"
    )
    assert out == [
        f"{path}:1: error: spec.slices[1].match: slice ios-na is unreachable: it only matches requests already "
        f"matched by the earlier slice ios (spec.slices[0]: x-platform exact 'ios'), {tail}",
        f"{path}:1: error: spec.slices[2].match: slice ios-again is unreachable: it has exactly the same header "
        f"match as the earlier slice ios (spec.slices[0]: x-platform exact 'ios'), {tail}",
        f"{path}:1: error: spec.slices[4].match: slice beta-eu is unreachable: it only matches requests already "
        f"matched by the earlier slice beta (spec.slices[3]: x-user prefix 'beta-'), {tail}",
        f"{path}:1: error: spec.slices[6].match: slice firefox is unreachable: it only matches requests already "
        f"matched by the earlier slice web (spec.slices[5]: user-agent regex 'Mozilla/.*'), {tail}",
    ]


def test_guards_that_never_judge_and_phases_nobody_judges(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = good_spec()
    spec["strategy"].pop("shadow")
    spec["analysis"]["guards"] = [
        {"name": "shift", "metric": "predictionKS", "max": 0.2, "phases": ["shadow"]}
    ]
    path = write(tmp_path, manifest(spec))
    code, out, _ = run(path, capsys=capsys)
    assert code == 1
    assert out == [
        f"{path}:1: warning: spec.analysis.guards[0].phases: guard shift is judged only in shadow, but "
        "spec.strategy.shadow is not set: it is never active",
        f"{path}:1: error: spec.analysis.guards: no guard is judged in canary: every slice stays Inconclusive "
        "there, so the rollout never gets past it; add 'canary' to a guard's phases",
    ]


def test_a_distribution_guard_bounded_relative_to_stable_is_refused_like_admission(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = good_spec()
    spec["analysis"]["guards"] = [{"name": "shift", "metric": "predictionKS", "maxRatioToStable": 1.2}]
    path = write(tmp_path, manifest(spec))
    code, out, _ = run(path, capsys=capsys)
    assert code == 1
    assert out == [
        f"{path}:1: error: spec.analysis.guards[0].metric: predictionPSI and predictionKS already compare the "
        "candidate with stable: bound them with max or min",
    ]


def test_template_the_operator_cannot_render_and_probe_budget(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = good_spec()
    spec["template"] = {"spec": {"containers": [{"name": "server"}]}}
    spec["readiness"] = {"loadTimeout": "2s", "probePeriod": "5s"}
    path = write(tmp_path, manifest(spec))
    code, out, _ = run(path, capsys=capsys)
    assert code == 1
    assert out == [
        f"{path}:1: error: spec.template.spec.containers[0].image: required (the operator would block the "
        "rollout with InvalidTemplate)",
        f"{path}:1: warning: spec.readiness.loadTimeout: 2s is shorter than probePeriod 5s: the model gets a "
        "single startup probe to be ready",
    ]


def test_document_problems(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    document = manifest(good_spec())
    document["apiVersion"] = "modelrollout.io/v1"
    document["metadata"] = {}
    del document["spec"]
    path = write(tmp_path, document)
    code, out, _ = run(path, capsys=capsys)
    assert code == 1
    assert out == [
        f"{path}:1: error: apiVersion: modelrollout.io/v1 is not served; use modelrollout.io/v1alpha1",
        f"{path}:1: error: metadata.name: required",
        f"{path}:1: error: spec: required: an object",
    ]


def test_invalid_yaml_missing_file_and_no_rollouts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump(manifest(good_spec())) + "---\nkind: [unclosed\n")
    code, out, _ = run(str(broken), capsys=capsys)
    assert code == 1
    assert len(out) == 1
    assert out[0].startswith(f"{broken}:2: error: invalid YAML: ")
    assert "(line " in out[0]
    missing = tmp_path / "missing.yaml"
    code, out, _ = run(str(missing), capsys=capsys)
    assert (code, out) == (1, [f"{missing}: error: cannot read: No such file or directory"])
    config_map = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}
    other = write(tmp_path, config_map, name="other.yaml")
    code, out, _ = run(other, capsys=capsys)
    assert (code, out) == (1, [f"{other}: error: no ModelRollout documents (modelrollout.io) found"])
    # another group's ModelRollout kind is not ours: skipped, not judged
    assert lint_text(yaml.safe_dump({"apiVersion": "example.com/v1", "kind": "ModelRollout"}), "x") == ([], 0)


def test_json_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = good_spec()
    spec["model"].pop("schema")
    path = write(tmp_path, manifest(spec))
    code = kubectl.main(["lint", "-o", "json", path])
    report = json.loads(capsys.readouterr().out)
    assert code == 0
    assert report == {
        "rollouts": 1,
        "errors": 0,
        "warnings": 1,
        "findings": [
            {
                "file": path,
                "document": 1,
                "severity": "warning",
                "path": "spec.model.schema",
                "message": "no serving schema: rollback safety (rollbackSafety: block) cannot be checked, so a "
                "rollback to a version that cannot read the candidate's requests is not caught",
                "name": "recommender",
            }
        ],
    }


def test_the_examples_lint_without_errors(capsys: pytest.CaptureFixture[str]) -> None:
    examples = sorted(str(p) for p in Path(__file__).resolve().parents[3].joinpath("examples").glob("*.yaml"))
    assert examples, "the repository ships example ModelRollouts"
    code, out, _ = run(*examples, capsys=capsys)
    assert code == 0, out
    assert not [line for line in out if ": error: " in line]


def test_triggers_that_cannot_work_as_written_are_warned(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = good_spec()  # interval 5s, no notifications
    spec["analysis"]["guards"] += [
        {"name": "accuracy-drop", "metric": "accuracy", "minRatioToStable": 0.95, "action": "pause"},
        {"name": "errors-sustained", "metric": "errorRate", "max": 0.02, "for": "2s"},
    ]
    path = write(tmp_path, manifest(spec))
    code, out, _ = run(path, capsys=capsys)
    assert code == 0, "warnings only"
    assert out == [
        f"{path}:1: warning: spec.analysis.guards[2].phases: guard accuracy-drop (accuracy) is judged in "
        "shadow, but a mirrored answer is discarded by the mesh, so no label ever comes back for it: the guard "
        "stays Inconclusive there and holds the shadow phase; use phases: [canary]",
        f"{path}:1: warning: spec.analysis.guards[2].action: guard accuracy-drop pauses the rollout for a "
        "person to decide, but spec.rollback.notify is empty: nobody is paged, and the candidate waits until "
        "someone looks",
        f"{path}:1: warning: spec.analysis.guards[3].for: 2s is shorter than interval 5s: the guard acts after "
        "failureLimit (2) failing evaluations, whatever for says",
    ]
    spec["analysis"]["guards"][2]["phases"] = ["canary"]
    spec["analysis"]["guards"][3]["for"] = "5m"
    spec["rollback"] = {"notify": [{"webhook": {"url": "https://hooks.example.com/oncall"}}]}
    code, out, _ = run(write(tmp_path, manifest(spec)), capsys=capsys)
    assert (code, out) == (0, [])


def test_a_name_longer_than_a_label_value_is_an_error() -> None:
    found, _ = lint_text(yaml.safe_dump(manifest(good_spec(), name="r" * 64)), "f.yaml")
    assert [(f.severity, f.path) for f in found] == [("error", "metadata.name")]
    assert "at most 63 characters" in found[0].message
    assert lint_text(yaml.safe_dump(manifest(good_spec(), name="r" * 63)), "f.yaml")[0] == []


def test_a_header_regex_re2_refuses_is_an_error_naming_the_slice() -> None:
    spec = good_spec()
    spec["slices"][0]["match"]["headers"]["x-platform"] = {"regex": "ios(?!-beta)"}
    found, _ = lint_text(yaml.safe_dump(manifest(spec)), "f.yaml")
    assert [(f.severity, f.path) for f in found] == [
        ("error", "spec.slices[0].match.headers.x-platform.regex")
    ]
    assert "slice ios" in found[0].message
    assert "not valid RE2" in found[0].message


def test_a_full_step_with_a_guard_relative_to_stable_is_an_error_saying_why() -> None:
    spec = good_spec()
    spec["strategy"]["canary"]["steps"][-1]["weight"] = 100
    spec["analysis"]["guards"].append({"name": "p99", "metric": "latencyP99", "maxRatioToStable": 1.2})
    found, _ = lint_text(yaml.safe_dump(manifest(spec)), "f.yaml")
    assert [(f.severity, f.path) for f in found] == [("error", "spec.strategy.canary.steps")]
    assert "leaves stable without requests" in found[0].message


def test_max_inconclusive_below_a_histogram_window_is_a_warning() -> None:
    spec = good_spec()
    spec["analysis"].update(interval="1s", window="6s", onInconclusive="fail", maxInconclusive=3)
    spec["analysis"]["guards"].append({"name": "p99", "metric": "latencyP99", "max": 0.5})

    def budget() -> list[str]:
        found, _ = lint_text(yaml.safe_dump(manifest(spec)), "f.yaml")
        return [f"{f.severity} {f.message}" for f in found if f.path == "spec.analysis.maxInconclusive"]

    (said,) = budget()
    assert said.startswith("warning 3 is not more than the 6 evaluations guard p99")
    assert "use at least 7" in said
    spec["analysis"]["maxInconclusive"] = 7
    assert budget() == []
    spec["analysis"].update(maxInconclusive=3, onInconclusive="hold")
    assert budget() == []
