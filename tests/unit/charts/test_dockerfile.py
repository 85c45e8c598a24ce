"""The image recipe (not built here: no Docker engine). What can be checked without building it is checked."""

from __future__ import annotations

import fnmatch
import json
import re
import tomllib
from importlib import import_module
from pathlib import Path

from modelrollout.cli.main import build_parser
from tests.support.helm import one, render

REPO = Path(__file__).resolve().parents[3]
DOCKERFILE = REPO / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    lines: list[str] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    out = []
    for line in lines:
        keyword, _, rest = line.partition(" ")
        out.append((keyword.upper(), rest.strip()))
    return out


def stages() -> list[list[tuple[str, str]]]:
    found: list[list[tuple[str, str]]] = []
    for keyword, rest in instructions():
        if keyword == "FROM":
            found.append([])
        if found:
            found[-1].append((keyword, rest))
    return found


def dockerignored(path: str) -> bool:
    """Whether .dockerignore keeps `path` out of the build context (last matching rule wins)."""
    ignored = False
    for raw in (REPO / ".dockerignore").read_text().splitlines():
        rule = raw.strip()
        if not rule or rule.startswith("#"):
            continue
        negate = rule.startswith("!")
        pattern = rule.lstrip("!").rstrip("/")
        if fnmatch.fnmatch(path, pattern) or fnmatch.fnmatch(path, pattern + "/*") or pattern == "**":
            ignored = not negate
    return ignored


def test_two_stages_from_a_python_311_slim_base_with_a_note_on_digest_pinning() -> None:
    text = DOCKERFILE.read_text()
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", text, re.MULTILINE)
    assert base is not None
    assert base.group(1).startswith("python:3.11-slim")
    assert "@sha256:" in text, "a comment must show how to pin the base image by digest in production"
    froms = [rest for keyword, rest in instructions() if keyword == "FROM"]
    assert froms == ["${PYTHON_IMAGE} AS build", "${PYTHON_IMAGE} AS runtime"]


def test_every_copied_file_exists_and_is_in_the_build_context() -> None:
    for keyword, rest in instructions():
        if keyword != "COPY" or rest.startswith("--from="):
            continue
        *sources, _ = rest.split()
        for source in sources:
            path = source.rstrip("/")
            assert (REPO / path).exists(), f"COPY {source}: {path} does not exist in the repository"
            assert not dockerignored(path), f"COPY {source}: .dockerignore keeps {path} out of the context"


def test_the_runtime_stage_runs_as_the_charts_fixed_non_root_user_without_build_tools() -> None:
    runtime = stages()[-1]
    users = [rest for keyword, rest in runtime if keyword == "USER"]
    assert len(users) == 1
    uid, _, gid = users[0].partition(":")
    assert uid.isdigit(), "a numeric USER lets the kubelet enforce runAsNonRoot"
    assert int(uid) > 0
    assert gid.isdigit()
    assert int(gid) > 0
    pod = one(render(), "Deployment")["spec"]["template"]["spec"]["securityContext"]
    assert (pod["runAsUser"], pod["runAsGroup"]) == (int(uid), int(gid))
    runs = " ".join(rest for keyword, rest in runtime if keyword == "RUN")
    for tool in ("apt-get install", "gcc", "build-essential", "pip install", "pip wheel"):
        assert tool not in runs, f"the runtime stage must not run {tool}"


def test_the_entry_point_is_the_projects_console_script_and_the_charts_command() -> None:
    entrypoints = [rest for keyword, rest in stages()[-1] if keyword == "ENTRYPOINT"]
    assert len(entrypoints) == 1
    entrypoint = json.loads(entrypoints[0])  # exec form
    assert entrypoint == ["modelrollout", "operator"]
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    module, _, function = scripts[entrypoint[0]].partition(":")
    assert getattr(import_module(module), function) is not None
    assert build_parser().parse_args(entrypoint[1:]).command == "operator"
    main = one(render(), "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert main["command"] == entrypoint


def test_the_exposed_ports_are_the_charts_defaults() -> None:
    exposed = [rest for keyword, rest in stages()[-1] if keyword == "EXPOSE"]
    main = one(render(), "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert sorted(exposed[0].split()) == sorted(str(p["containerPort"]) for p in main["ports"])
