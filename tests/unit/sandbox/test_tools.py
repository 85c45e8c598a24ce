"""Files pinned from a Go module: which files are cached, when the cache counts as present, and the errors.
`go mod download` is replaced by a fake module directory, so nothing here reaches the network."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from modelrollout.sandbox import cluster, tools
from modelrollout.sandbox.processes import SandboxError
from modelrollout.sandbox.tools import GoModuleFiles, ToolError

SUM = "h1:fake="


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "modelrollout"


@pytest.fixture
def module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A module as `go mod download` leaves it: read-only files, more of them than are pinned."""
    root = tmp_path / "mod" / "example.com" / "crds@v1.2.3"
    for relative in ("crds/a.yaml", "crds/b.yaml", "crds/notes.md", "crds/extra/c.yaml", "go.mod"):
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(relative)
        (root / relative).chmod(0o444)
    calls: list[tuple[str, str]] = []

    def download(name: str, version: str) -> dict[str, str]:
        calls.append((name, version))
        return {"Path": name, "Version": version, "Dir": str(root), "Sum": SUM}

    monkeypatch.setattr(tools, "_go_mod_download", download)
    return root


def pinned(*files: str, sum: str = SUM) -> GoModuleFiles:
    return GoModuleFiles(name="crds", module="example.com/crds", version="v1.2.3", sum=sum, files=files)


def test_build_copies_only_the_pinned_files_keeping_their_paths(module: Path, cache: Path) -> None:
    tool = pinned("crds/*.yaml", "go.mod")
    assert not tool.present()
    tool.build()
    assert tool.present()
    assert tool.directory == cache / "crds-v1.2.3"
    copied = sorted(str(p.relative_to(tool.directory)) for p in tool.directory.rglob("*") if p.is_file())
    assert copied == ["crds/a.yaml", "crds/b.yaml", "go.mod"]  # no notes.md, no subdirectory
    assert tool.file("crds/a.yaml").read_text() == "crds/a.yaml"
    assert tool.file("crds/a.yaml").stat().st_mode & 0o200  # writable, unlike the module cache
    assert [p.name for p in cache.iterdir()] == ["crds-v1.2.3"]  # no staging directory left


def test_a_file_pinned_later_makes_the_cache_absent_until_fetched(module: Path) -> None:
    pinned("crds/a.yaml").build()
    assert pinned("crds/a.yaml").present()
    assert not pinned("crds/a.yaml", "crds/extra/c.yaml").present()
    pinned("crds/a.yaml", "crds/extra/c.yaml").build()
    assert pinned("crds/a.yaml", "crds/extra/c.yaml").present()


def test_an_entry_matching_nothing_fails_and_caches_nothing(module: Path, cache: Path) -> None:
    tool = pinned("crds/a.yaml", "config/*.yaml")
    with pytest.raises(ToolError, match=r"crds: no file config/\*\.yaml in example\.com/crds@v1\.2\.3"):
        tool.build()
    assert not tool.present()
    assert list(cache.iterdir()) == []


def test_a_checksum_other_than_the_pinned_one_is_refused(module: Path) -> None:
    tool = pinned("crds/a.yaml", sum="h1:other=")
    with pytest.raises(ToolError, match=r"checksum h1:fake=, pinned h1:other="):
        tool.build()
    assert not tool.present()


def test_a_missing_file_names_the_tool_and_the_fix() -> None:
    with pytest.raises(ToolError, match=r"crds: file missing at .*crds-v1\.2\.3/crds/a\.yaml.*make tools"):
        pinned("crds/a.yaml").file("crds/a.yaml")
    with pytest.raises(ToolError, match=r"istio-api: file missing at .*make tools"):
        tools.istio_crds()


def test_ensure_all_fetches_what_is_missing_once(module: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tool = pinned("crds/a.yaml")
    monkeypatch.setattr(tools, "ALL_TOOLS", (tool,))
    lines: list[str] = []
    tools.ensure_all(lines.append)
    assert "fetching" in lines[0]
    lines.clear()
    tools.ensure_all(lines.append)
    assert "cached" in lines[0]


def _fake_go(monkeypatch: pytest.MonkeyPatch, returncode: int, stdout: str, stderr: str = "") -> list[Any]:
    seen: list[Any] = []

    def run(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        seen.append((argv, kwargs))
        return subprocess.CompletedProcess(argv, returncode, stdout, stderr)

    monkeypatch.setattr(shutil, "which", lambda _: "/usr/bin/go")
    monkeypatch.setattr(subprocess, "run", run)
    return seen


def test_go_mod_download_runs_outside_any_module_with_the_local_toolchain(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen = _fake_go(monkeypatch, 0, json.dumps({"Dir": "/mod/x@v1", "Sum": SUM}))
    assert tools._go_mod_download("example.com/x", "v1.0.0")["Dir"] == "/mod/x@v1"
    argv, kwargs = seen[0]
    assert argv == ["go", "mod", "download", "-json", "example.com/x@v1.0.0"]
    assert kwargs["env"]["GOTOOLCHAIN"] == "local"
    assert kwargs["env"]["GOWORK"] == "off"
    assert not Path(kwargs["cwd"]).exists()  # an empty scratch directory, removed afterwards


def test_go_mod_download_reports_the_error_go_printed(monkeypatch: pytest.MonkeyPatch) -> None:
    error = "example.com/x@v9.9.9: invalid version: unknown revision v9.9.9"
    _fake_go(monkeypatch, 1, json.dumps({"Path": "example.com/x", "Version": "v9.9.9", "Error": error}))
    with pytest.raises(ToolError, match=r"unknown revision v9\.9\.9"):
        tools._go_mod_download("example.com/x", "v9.9.9")


def test_go_mod_download_without_go_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda _: None)
    with pytest.raises(ToolError, match="Go toolchain is not on PATH"):
        tools._go_mod_download("example.com/x", "v1.0.0")


def test_istio_is_pinned_to_its_crd_file() -> None:
    assert tools.ISTIO_API in tools.ALL_TOOLS
    assert (tools.ISTIO_API.module, tools.ISTIO_API.version) == ("istio.io/api", "v1.30.8")
    assert tools.ISTIO_API.files == (tools.ISTIO_CRDS_FILE,)
    assert tools.ISTIO_API.sum.startswith("h1:")


def _crd(name: str) -> str:
    return f"apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: {name}\n"


def test_only_virtual_service_and_destination_rule_are_taken_from_istios_file(tmp_path: Path) -> None:
    crds = tmp_path / "crds.yaml"
    names = ["gateways.networking.istio.io", *cluster.ISTIO_CRD_NAMES, "telemetries.telemetry.istio.io"]
    crds.write_text("# generated\n---\n" + "---\n".join(_crd(name) for name in names) + "---\n")
    documents = cluster.istio_crd_documents(crds)
    assert [d["metadata"]["name"] for d in documents] == list(cluster.ISTIO_CRD_NAMES)
    crds.write_text(_crd("virtualservices.networking.istio.io"))
    with pytest.raises(
        SandboxError, match=r"no CustomResourceDefinition destinationrules\.networking\.istio\.io"
    ):
        cluster.istio_crd_documents(crds)


def test_gateway_api_is_pinned_to_its_standard_channel_crds() -> None:
    assert tools.GATEWAY_API in tools.ALL_TOOLS
    assert (tools.GATEWAY_API.module, tools.GATEWAY_API.version) == ("sigs.k8s.io/gateway-api", "v1.6.3")
    assert tools.GATEWAY_API.files == ("config/crd/standard/*.yaml",)
    assert tools.GATEWAY_API.sum.startswith("h1:")


def test_only_crds_are_taken_from_gateway_apis_files_not_its_admission_policy(tmp_path: Path) -> None:
    """config/crd/standard/*.yaml also holds a ValidatingAdmissionPolicy (and its binding) of the same name
    pattern: a reader picking documents by name alone would apply it as if it were a CRD."""
    policy = (
        "apiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingAdmissionPolicy\n"
        "metadata:\n  name: httproutes.gateway.networking.k8s.io\n"
    )
    crds = tmp_path / "crds.yaml"
    crds.write_text(policy + "---\n" + _crd("httproutes.gateway.networking.k8s.io"))
    [document] = cluster.crd_documents(crds, cluster.GATEWAY_API_CRD_NAMES)
    assert document["kind"] == "CustomResourceDefinition"
    crds.write_text(policy)
    with pytest.raises(
        SandboxError, match=r"no CustomResourceDefinition httproutes\.gateway\.networking\.k8s\.io"
    ):
        cluster.crd_documents(crds, cluster.GATEWAY_API_CRD_NAMES)
