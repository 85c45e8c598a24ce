"""docs/reference.md is generated from the API models and must match them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from modelrollout.api.crd import crd
from modelrollout.cli import main as modelrollout
from modelrollout.cli import reference

REFERENCE = Path(__file__).resolve().parents[3] / "docs" / "reference.md"


def test_the_committed_reference_is_up_to_date() -> None:
    committed = REFERENCE.read_text() if REFERENCE.is_file() else ""
    assert committed == reference.render(), (
        f"docs/reference.md is stale: the API models changed. Regenerate it with `{reference.COMMAND}` "
        "and commit the result"
    )


def _spec_fields(schema: dict[str, object], path: str) -> list[str]:
    """Every field path of a CRD schema node, as the reference names them."""
    out: list[str] = []
    properties = schema.get("properties")
    if isinstance(properties, dict):
        for name, child in properties.items():
            out.append(f"{path}.{name}")
            out += _spec_fields(child, f"{path}.{name}")
    items = schema.get("items")
    if isinstance(items, dict):
        out += _spec_fields(items, f"{path}[]")
    values = schema.get("additionalProperties")
    if isinstance(values, dict):
        out += _spec_fields(values, f"{path}.<>")
    return out


def _documented(text: str) -> tuple[dict[str, set[str]], dict[str, str]]:
    """Field names per section, and sections that point to another one documenting the same shape."""
    fields: dict[str, set[str]] = {}
    aliases: dict[str, str] = {}
    section = ""
    for line in text.splitlines():
        heading = re.fullmatch(r"### `(.+)`", line)
        if heading:
            section = re.sub(r"<[^>]*>", "<>", heading.group(1))
            fields[section] = set()
            continue
        row = re.match(r"\| \[?`([^`]+)`(?:\]\(#[^)]*\))? \| ([^|]+) \|", line)
        if row and section:
            name, kind = row.groups()
            fields[section].add(name)
            same = re.search(r"\(as `([^`]+)`\)", kind)
            if same:
                suffix = "[]" if kind.startswith("[]") else ""
                aliases[f"{section}.{name}{suffix}"] = re.sub(r"<[^>]*>", "<>", same.group(1))
    return fields, aliases


def test_every_field_of_the_crd_is_documented_in_its_section() -> None:
    text = reference.render()
    fields, aliases = _documented(text)
    root = crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]
    paths = _spec_fields(root["spec"], "spec") + _spec_fields(root["status"], "status")
    assert len(paths) > 100
    for path in paths:
        parent, _, name = path.rpartition(".")
        moved = True
        while moved:  # follow links until the section that documents the shape
            moved = False
            for alias, target in aliases.items():
                if parent == alias or parent.startswith((alias + ".", alias + "[")):
                    parent, moved = target + parent[len(alias) :], True
        assert name in fields.get(parent, set()), f"{path} is not documented (looked in section {parent})"
    assert "| `interval` | duration |  | `30s` | How often every slice is judged. |" in text
    assert (
        "| `replicas` | integer | yes |  | Replicas of the stable version; the candidate scales to match. | >= 1; <= 1000 |"
        in text
    )
    assert "- step weights must strictly ascend (reported at `spec.strategy.canary.steps`): " in text
    assert '| `phases` | []string |  | `["shadow", "canary"]` |' in text
    assert "### `spec.analysis.guards[].slices.<slice>`" in text
    assert "| `modelrollout.io/promote` |" in text


def test_the_docs_command_writes_and_checks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "docs" / "reference.md"
    assert modelrollout.main(["docs", "reference", "--output", str(target), "--check"]) == 1
    assert f"is stale: run `{reference.COMMAND}`" in capsys.readouterr().out
    assert modelrollout.main(["docs", "reference", "--output", str(target)]) == 0
    assert target.read_text() == reference.render()
    assert modelrollout.main(["docs", "reference", "--output", str(target), "--check"]) == 0
    assert modelrollout.main(["docs", "reference"]) == 0
    assert capsys.readouterr().out.endswith(reference.render())


def test_modelrollout_lint_is_the_plugin_lint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty.yaml"
    empty.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n")
    assert modelrollout.main(["lint", str(empty)]) == 1
    assert capsys.readouterr().out == f"{empty}: error: no ModelRollout documents (modelrollout.io) found\n"
