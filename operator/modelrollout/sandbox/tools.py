"""Pinned sandbox tools: binaries built from the Go modules under tools/ or unpacked from Debian, and data
files (Istio's and Gateway API's CRDs) fetched from Go modules through the Go module proxy, cached by version.

Besides the control plane, two tools let the tests ask other projects' own code what it makes of the
operator's output: `istioctl` (Istio's validation and analyzers) and `verdicts` (kstatus and Argo CD's Lua
health checks and resource actions, from tools/verdicts).

Everything lands under ``${XDG_CACHE_HOME:-~/.cache}/modelrollout/<tool>-<version>/`` and is reused when present,
so only the first run on a machine pays for the builds.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

KUBERNETES_VERSION = "v1.35.4"
ETCD_VERSION = "v3.6.6"
KWOK_VERSION = "v0.7.0"
HELM_VERSION = "v3.21.4"
PROMETHEUS_DEB_VERSION = "2.42.0+ds-5+deb12u1"
ISTIO_API_VERSION = "v1.30.8"
GATEWAY_API_VERSION = "v1.6.3"
ISTIO_VERSION = "v0.0.0-20260827124520-eed52ebb66ad"
"""istio.io/istio has no tagged Go module versions; this is the pseudo-version istioctl is built from."""
CLI_UTILS_VERSION = "v0.37.2"
ARGO_CD_VERSION = "v3.2.12"

REPO_ROOT = Path(__file__).resolve().parents[3]
GO_MODULES = REPO_ROOT / "tools"


def source_digest(module: str) -> str:
    """A short hash of a module's own files under tools/ (go.mod, go.sum, *.go): a tool whose source lives
    here is rebuilt when that source changes, not only when a pinned version does."""
    digest = hashlib.sha256()
    directory = GO_MODULES / module
    for path in sorted(directory.glob("*")):
        if path.is_file() and (path.suffix == ".go" or path.name in ("go.mod", "go.sum")):
            digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


class ToolError(RuntimeError):
    """A pinned tool is missing or could not be built; the message says which and what to do."""


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "modelrollout"


def _k8s_ldflags() -> str:
    major, minor = KUBERNETES_VERSION.lstrip("v").split(".")[:2]
    pairs = {"gitVersion": KUBERNETES_VERSION, "gitMajor": major, "gitMinor": minor, "gitTreeState": "clean"}
    flags = ["-s", "-w"]
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [f"-X {pkg}.{key}={value}" for key, value in pairs.items()]
    return " ".join(flags)


def _go_binary_name(package: str) -> str:
    """The file `go build -o dir/` writes for a package: its last element, skipping a major-version suffix."""
    parts = package.rstrip("/").split("/")
    if len(parts) > 1 and parts[-1][:1] == "v" and parts[-1][1:].isdigit():
        return parts[-2]
    return parts[-1]


@dataclass(frozen=True)
class GoTool:
    """A set of binaries built by one pinned Go module in tools/<module>."""

    name: str
    version: str
    module: str
    packages: dict[str, str]  # binary name -> Go package path
    ldflags: str = "-s -w"
    tags: str = ""
    env: dict[str, str] = field(default_factory=dict)

    @property
    def directory(self) -> Path:
        return cache_root() / f"{self.name}-{self.version}" / "bin"

    def path(self, binary: str) -> Path:
        return self.directory / binary

    def present(self) -> bool:
        return all(self.path(binary).is_file() for binary in self.packages)

    def build(self) -> None:
        if shutil.which("go") is None:
            raise ToolError(
                f"{self.name}: the Go toolchain is not on PATH; it is needed once to build {self.version}"
            )
        module_dir = GO_MODULES / self.module
        self.directory.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{self.name}-", dir=self.directory.parent))
        env = {
            **os.environ,
            "CGO_ENABLED": "0",
            "GOTOOLCHAIN": "local",
            "GOFLAGS": "-buildvcs=false",
            **self.env,
        }
        cmd = ["go", "build", "-trimpath", "-ldflags", self.ldflags, "-o", str(staging) + "/"]
        if self.tags:
            cmd += ["-tags", self.tags]
        cmd += list(self.packages.values())
        try:
            result = subprocess.run(cmd, cwd=module_dir, env=env, capture_output=True, text=True)
            if result.returncode != 0:
                raise ToolError(f"{self.name}: go build failed in {module_dir}:\n{result.stderr[-4000:]}")
            for binary, package in self.packages.items():
                built = staging / _go_binary_name(package)
                if built.name != binary:
                    built.rename(staging / binary)
            shutil.rmtree(self.directory, ignore_errors=True)
            staging.rename(self.directory)
        finally:
            shutil.rmtree(staging, ignore_errors=True)


@dataclass(frozen=True)
class DebianTool:
    """A binary unpacked (never installed) from a pinned Debian package."""

    name: str
    package: str
    version: str
    binaries: tuple[str, ...]

    @property
    def directory(self) -> Path:
        return cache_root() / f"{self.name}-{self.version}" / "usr" / "bin"

    def path(self, binary: str) -> Path:
        return self.directory / binary

    def present(self) -> bool:
        return all(self.path(binary).is_file() for binary in self.binaries)

    def build(self) -> None:
        for command in ("apt-get", "dpkg-deb"):
            if shutil.which(command) is None:
                raise ToolError(
                    f"{self.name}: {command} is not available; {self.package} comes from Debian's package"
                )
        root = self.directory.parent.parent
        root.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=f".{self.name}-", dir=root.parent) as tmp:
            fetched = subprocess.run(
                ["apt-get", "download", f"{self.package}={self.version}"],
                cwd=tmp,
                capture_output=True,
                text=True,
            )
            debs = list(Path(tmp).glob("*.deb"))
            if fetched.returncode != 0 or not debs:
                raise ToolError(
                    f"{self.name}: `apt-get download {self.package}={self.version}` failed "
                    f"(run `apt-get update` first if the package lists are empty):\n{fetched.stderr[-2000:]}"
                )
            unpacked = Path(tmp) / "root"
            subprocess.run(["dpkg-deb", "-x", str(debs[0]), str(unpacked)], check=True)
            shutil.rmtree(root, ignore_errors=True)
            unpacked.rename(root)


@dataclass(frozen=True)
class GoModuleFiles:
    """Files copied out of one pinned Go module version, fetched with `go mod download` through the Go module
    proxy (so the checksum database verifies them) and kept under their paths inside the module."""

    name: str
    module: str
    version: str
    sum: str  # the module's go.sum hash ("h1:..."), checked on every fetch like a go.sum line
    files: tuple[str, ...]  # paths inside the module; an entry may be a glob ("config/crd/standard/*.yaml")

    @property
    def directory(self) -> Path:
        return cache_root() / f"{self.name}-{self.version}"

    def path(self, relative: str) -> Path:
        return self.directory / relative

    def present(self) -> bool:
        # build() moves the whole directory into place at once, so one file per entry means all of them.
        return all(any(p.is_file() for p in self.directory.glob(entry)) for entry in self.files)

    def file(self, relative: str) -> Path:
        """Path of a cached file; a clear error (naming the tool and the fix) when it was never fetched."""
        path = self.path(relative)
        if not path.is_file():
            raise ToolError(
                f"{self.name}: file missing at {path}; run `make tools` to fetch the pinned tools"
            )
        return path

    def build(self) -> None:
        download = _go_mod_download(self.module, self.version)
        if download.get("Sum") != self.sum:
            raise ToolError(
                f"{self.name}: {self.module}@{self.version} has checksum {download.get('Sum')}, "
                f"pinned {self.sum}"
            )
        source = Path(download["Dir"])
        self.directory.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{self.name}-", dir=self.directory.parent))
        try:
            for entry in self.files:
                found = sorted(p for p in source.glob(entry) if p.is_file())
                if not found:
                    raise ToolError(f"{self.name}: no file {entry} in {self.module}@{self.version}")
                for original in found:
                    copy = staging / original.relative_to(source)
                    copy.parent.mkdir(parents=True, exist_ok=True)
                    # copyfile, not copy: the module cache's files are read-only, ours need not be.
                    shutil.copyfile(original, copy)
            shutil.rmtree(self.directory, ignore_errors=True)
            staging.rename(self.directory)
        finally:
            shutil.rmtree(staging, ignore_errors=True)


def _go_mod_download(module: str, version: str) -> dict[str, str]:
    """`go mod download -json` of one module version: its fields, "Dir" being the unpacked module."""
    if shutil.which("go") is None:
        raise ToolError(f"{module}: the Go toolchain is not on PATH; it is needed once to fetch {version}")
    # The caller's GOFLAGS (say -mod=vendor) and go.work must not change what is downloaded, nor any go.mod:
    # an empty directory is no module, and `go mod download module@version` needs none.
    env = {**os.environ, "GOTOOLCHAIN": "local", "GOFLAGS": "-mod=mod", "GOWORK": "off", "GO111MODULE": "on"}
    with tempfile.TemporaryDirectory(prefix="modelrollout-go-") as empty:
        result = subprocess.run(
            ["go", "mod", "download", "-json", f"{module}@{version}"],
            cwd=empty,
            env=env,
            capture_output=True,
            text=True,
        )
    try:
        parsed = json.loads(result.stdout)
    except json.JSONDecodeError:
        parsed = None
    fields: dict[str, str] = parsed if isinstance(parsed, dict) else {}
    if result.returncode != 0 or "Error" in fields or "Dir" not in fields:
        reason = fields.get("Error") or result.stderr.strip() or result.stdout.strip()
        raise ToolError(f"`go mod download {module}@{version}` failed:\n{reason[-2000:]}")
    return fields


class Tool(Protocol):
    """What `ensure_all` needs of a pinned tool."""

    @property
    def name(self) -> str: ...

    @property
    def version(self) -> str: ...

    @property
    def directory(self) -> Path: ...

    def present(self) -> bool: ...

    def build(self) -> None: ...


KUBERNETES = GoTool(
    name="kubernetes",
    version=KUBERNETES_VERSION,
    module="k8s",
    packages={
        "kube-apiserver": "k8s.io/kubernetes/cmd/kube-apiserver",
        "kube-controller-manager": "k8s.io/kubernetes/cmd/kube-controller-manager",
        "kube-scheduler": "k8s.io/kubernetes/cmd/kube-scheduler",
        "kubectl": "k8s.io/kubernetes/cmd/kubectl",
    },
    ldflags=_k8s_ldflags(),
    tags="selinux,notest",
)
# The real node's kubelet: the same Kubernetes version, from its own module (tools/kubelet) so the
# control-plane build above keeps its dependency set.
KUBELET = GoTool(
    name="kubelet",
    version=KUBERNETES_VERSION,
    module="kubelet",
    packages={"kubelet": "k8s.io/kubernetes/cmd/kubelet"},
    ldflags=_k8s_ldflags(),
    tags="selinux,notest",
)
ETCD = GoTool(
    name="etcd", version=ETCD_VERSION, module="etcd", packages={"etcd": "go.etcd.io/etcd/server/v3"}
)
KWOK = GoTool(
    name="kwok", version=KWOK_VERSION, module="kwok", packages={"kwok": "sigs.k8s.io/kwok/cmd/kwok"}
)
HELM = GoTool(
    name="helm",
    version=HELM_VERSION,
    module="helm",
    packages={"helm": "helm.sh/helm/v3/cmd/helm"},
    ldflags=f"-s -w -X helm.sh/helm/v3/internal/version.version={HELM_VERSION}",
)
ISTIO = GoTool(
    name="istio",
    version=ISTIO_VERSION,
    module="istio",
    packages={"istioctl": "istio.io/istio/istioctl/cmd/istioctl"},
    ldflags=f"-s -w -X istio.io/istio/pkg/version.buildVersion={ISTIO_VERSION}",
)
VERDICTS = GoTool(
    name="verdicts",
    # Our own source (tools/verdicts) over pinned upstream modules: its hash is part of the cache key.
    version=f"{CLI_UTILS_VERSION}-argocd-{ARGO_CD_VERSION}-{source_digest('verdicts')}",
    module="verdicts",
    packages={"verdicts": "modelrollout.io/tools/verdicts"},
)
PROMETHEUS = DebianTool(
    name="prometheus",
    package="prometheus",
    version=PROMETHEUS_DEB_VERSION,
    binaries=("prometheus", "promtool"),
)

# All of Istio's CRDs in one multi-document file; the sandbox installs VirtualService and DestinationRule.
ISTIO_CRDS_FILE = "kubernetes/customresourcedefinitions.gen.yaml"
ISTIO_API = GoModuleFiles(
    name="istio-api",
    module="istio.io/api",
    version=ISTIO_API_VERSION,
    sum="h1:/weRNO9YbJsKqFibiGCjXG1i+UwNhJb3vts6ChGR554=",
    files=(ISTIO_CRDS_FILE,),
)

# Gateway API's standard-channel CRDs, one per file. The glob also matches a ValidatingAdmissionPolicy
# (vap_safeupgrades.yaml), which is no CRD: readers pick documents by kind and name.
GATEWAY_API_CRDS_DIR = "config/crd/standard"
GATEWAY_API = GoModuleFiles(
    name="gateway-api",
    module="sigs.k8s.io/gateway-api",
    version=GATEWAY_API_VERSION,
    sum="h1:lKpJa5bGlraC/QeACvCpsHLdmO6y0iKfzVl6gzaFEYc=",
    files=(f"{GATEWAY_API_CRDS_DIR}/*.yaml",),
)

BINARY_TOOLS: tuple[GoTool | DebianTool, ...] = (
    ETCD,
    KUBERNETES,
    KUBELET,
    KWOK,
    HELM,
    PROMETHEUS,
    ISTIO,
    VERDICTS,
)
ALL_TOOLS: tuple[Tool, ...] = (*BINARY_TOOLS, ISTIO_API, GATEWAY_API)
_BY_BINARY: dict[str, GoTool | DebianTool] = {
    binary: tool
    for tool in BINARY_TOOLS
    for binary in (tool.packages if isinstance(tool, GoTool) else tool.binaries)
}


def binary(name: str) -> Path:
    """Path of a cached binary; a clear error (naming the binary and the fix) when it was never built."""
    override = os.environ.get("MODELROLLOUT_" + name.upper().replace("-", "_"))
    if override:
        path = Path(override)
    else:
        try:
            path = _BY_BINARY[name].path(name)
        except KeyError:
            raise ToolError(f"unknown sandbox binary {name!r}") from None
    if not path.is_file() or not os.access(path, os.X_OK):
        raise ToolError(f"{name}: binary missing at {path}; run `make tools` to build the pinned tools")
    return path


def istio_crds() -> Path:
    """The cached multi-document file with all of Istio's CRDs."""
    return ISTIO_API.file(ISTIO_CRDS_FILE)


def gateway_api_crds() -> Path:
    """The cached file with Gateway API's HTTPRoute CRD (standard channel)."""
    return GATEWAY_API.file(f"{GATEWAY_API_CRDS_DIR}/gateway.networking.k8s.io_httproutes.yaml")


def ensure_all(log: Callable[[str], None] = print) -> None:
    """Build, unpack or fetch every pinned tool that is not cached yet, one progress line per tool."""
    total = time.monotonic()
    for tool in ALL_TOOLS:
        if tool.present():
            log(f"  {tool.name:<11} {tool.version:<36} cached   {tool.directory}")
            continue
        verb = {GoTool: "building", DebianTool: "unpacking"}.get(type(tool), "fetching")
        log(f"  {tool.name:<11} {tool.version:<36} {verb} ...")
        started = time.monotonic()
        tool.build()
        log(f"  {tool.name:<11} {tool.version:<36} ready    in {time.monotonic() - started:.0f}s")
    log(f"  all tools ready in {time.monotonic() - total:.0f}s (cache: {cache_root()})")
