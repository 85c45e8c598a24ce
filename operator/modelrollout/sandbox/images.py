"""Container images for the sandbox's real node, built on this machine (no container registry is reachable).

- `python-base`: Debian bookworm from `debootstrap --variant=minbase` with Debian's Python 3.11, and pip and
  venv in /opt/python (on PATH), the way the public python image lays them out; it trusts this machine's CA
  bundle, so pip reaches PyPI from a build here;
- `operator`: the repository's Dockerfile, built with `--build-arg PYTHON_IMAGE=` that base;
- `model-server`: the operator image running `python -m modelrollout.sandbox.pod_server` (a model server on
  `modelrollout.serving` whose load time and behaviour come from its environment);
- `pause`: a static C program that waits for a signal, the pod sandbox image of the node's containerd.

A Docker engine (Debian's docker.io, started here as root with its own data root, no bridge and no iptables
rules) builds them once; each is saved as a docker-archive tarball under `<cache>/images/`, named by a hash of
everything that goes into it, so a warm run starts no Docker engine at all. The real node imports the
tarballs into its containerd.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from modelrollout.sandbox.tools import REPO_ROOT, ToolError, cache_root

DEBIAN_SUITE = "bookworm"
DEBIAN_MIRROR_ENV = "MODELROLLOUT_DEBIAN_MIRROR"
DEFAULT_DEBIAN_MIRROR = "http://deb.debian.org/debian"
BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates")
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
REGISTRY = "localhost/modelrollout"
BASE_RECIPE = 3  # bump when the base's recipe below changes
POD_SERVER_MODULE = "modelrollout.sandbox.pod_server"
DOCKER_BINARIES = ("dockerd", "docker")
KEEP_ARCHIVES = 3
# The operator image's build context: what .dockerignore lets through.
CONTEXT_FILES = ("Dockerfile", "pyproject.toml", "constraints.txt", "README.md")
CONTEXT_TREES = ("operator",)

PAUSE_C = r"""
/* The pod sandbox's process: holds the pod's namespaces, reaps orphans, exits on SIGINT or SIGTERM. */
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

static void stop(int sig) { (void)sig; _exit(0); }
static void reap(int sig) { (void)sig; while (waitpid(-1, 0, WNOHANG) > 0) {} }

int main(void) {
    signal(SIGINT, stop);
    signal(SIGTERM, stop);
    signal(SIGCHLD, reap);
    for (;;) pause();
}
"""


def images_dir() -> Path:
    return cache_root() / "images"


@dataclass(frozen=True)
class Image:
    name: str
    ref: str


@dataclass(frozen=True)
class ImageSet:
    """The images of one checkout; the node's three share one docker-archive (their common layers once)."""

    base: Image
    operator: Image
    model_server: Image
    pause: Image
    archive: Path

    def for_node(self) -> tuple[Image, ...]:
        """What the real node's containerd needs."""
        return (self.operator, self.model_server, self.pause)

    def present(self) -> bool:
        return self.archive.is_file()


def _hash(*parts: bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()[:12]


def _context_digest(root: Path) -> bytes:
    """A digest of the operator image's build context (files as Docker would send them)."""
    digest = hashlib.sha256()
    paths = [root / name for name in CONTEXT_FILES]
    for tree in CONTEXT_TREES:
        paths += sorted(
            p
            for p in (root / tree).rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and ".egg-info" not in str(p)
        )
    for path in paths:
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.digest()


def image_set(root: Path = REPO_ROOT) -> ImageSet:
    """The images for this checkout, each named by a hash of its inputs."""
    ca = HOST_CA_BUNDLE.read_bytes() if HOST_CA_BUNDLE.is_file() else b""
    base_tag = _hash(str(BASE_RECIPE).encode(), DEBIAN_SUITE.encode(), " ".join(BASE_PACKAGES).encode(), ca)
    operator_tag = _hash(base_tag.encode(), _context_digest(root))
    server_tag = _hash(operator_tag.encode(), POD_SERVER_MODULE.encode())
    pause_tag = _hash(PAUSE_C.encode())

    def image(name: str, tag: str) -> Image:
        return Image(name, f"{REGISTRY}/{name}:{tag}")

    node_tag = _hash(operator_tag.encode(), server_tag.encode(), pause_tag.encode())
    return ImageSet(
        base=image("python-base", base_tag),
        operator=image("operator", operator_tag),
        model_server=image("model-server", server_tag),
        pause=image("pause", pause_tag),
        archive=images_dir() / f"node-images-{node_tag}.tar",
    )


# The Docker engine ------------------------------------------------------------------------------------------
def docker_missing() -> str | None:
    """Why this machine cannot build the images, or None."""
    if os.geteuid() != 0:
        return "building images needs root (dockerd and debootstrap run as root)"
    missing = [b for b in (*DOCKER_BINARIES, "debootstrap", "gcc") if shutil.which(b) is None]
    if missing:
        return (
            f"{', '.join(missing)} not found: install Debian's docker.io, debootstrap and gcc "
            "(`apt-get install docker.io debootstrap gcc`)"
        )
    return None


class DockerEngine:
    """A dockerd of our own: data root in the cache (layers survive between runs), its own socket, no bridge,
    no iptables rules and no change to the host's IP forwarding; builds use the host's network."""

    def __init__(self, log: Callable[[str], None]) -> None:
        self.log = log
        self.root = cache_root() / "docker"
        self.socket = Path("/run/modelrollout-docker/docker.sock")
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> DockerEngine:
        self.root.mkdir(parents=True, exist_ok=True)
        self.socket.parent.mkdir(parents=True, exist_ok=True)
        self.socket.unlink(missing_ok=True)
        argv = [
            str(shutil.which("dockerd")),
            f"--data-root={self.root / 'data'}",
            f"--exec-root={self.socket.parent / 'exec'}",
            f"--pidfile={self.socket.parent / 'dockerd.pid'}",
            f"--host=unix://{self.socket}",
            "--bridge=none",
            "--iptables=false",
            "--ip6tables=false",
            "--ip-forward=false",
            "--ip-masq=false",
            "--exec-opt=native.cgroupdriver=cgroupfs",
            "--log-level=warn",
        ]
        log = (self.root / "dockerd.log").open("ab")
        self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ToolError(
                    f"dockerd exited with {self.process.returncode}; see {self.root / 'dockerd.log'}"
                )
            if self.run("version", check=False).returncode == 0:
                return self
            time.sleep(0.3)
        raise ToolError(f"dockerd did not answer within 60s; see {self.root / 'dockerd.log'}")

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None

    def run(
        self, *args: str, stdin: bytes | None = None, check: bool = True, cwd: Path | None = None
    ) -> subprocess.CompletedProcess[bytes]:
        env = {**os.environ, "DOCKER_HOST": f"unix://{self.socket}", "DOCKER_BUILDKIT": "0"}
        # Debian's client, the daemon's own version (a newer client elsewhere on PATH may want BuildKit).
        client = "/usr/bin/docker" if Path("/usr/bin/docker").is_file() else str(shutil.which("docker"))
        result = subprocess.run([client, *args], input=stdin, capture_output=True, env=env, cwd=cwd)
        if check and result.returncode != 0:
            output = (result.stdout + result.stderr).decode(errors="replace")[-4000:]
            raise ToolError(f"docker {' '.join(args[:3])} failed ({result.returncode}):\n{output}")
        return result

    def has(self, ref: str) -> bool:
        return self.run("image", "inspect", ref, check=False).returncode == 0

    def save(self, images: ImageSet) -> None:
        """One docker-archive with the node's images; older archives of this cache go."""
        staging = images.archive.with_name(f".{images.archive.name}.{os.getpid()}")
        try:
            self.run("save", "--output", str(staging), *(image.ref for image in images.for_node()))
            staging.rename(images.archive)
        finally:
            staging.unlink(missing_ok=True)
        # Several checkouts share the cache: keep the newest few archives, and in the engine only the
        # current operator and model-server (the base and the dependency layers stay for the next build).
        archives = sorted(images_dir().glob("node-images-*.tar"), key=lambda p: p.stat().st_mtime)
        for old in archives[:-KEEP_ARCHIVES]:
            old.unlink(missing_ok=True)
        current = {image.ref for image in images.for_node()}
        listed = self.run("images", "--format", "{{.Repository}}:{{.Tag}}", f"{REGISTRY}/*").stdout.decode()
        stale = [ref for ref in listed.split() if ref not in current and "python-base" not in ref]
        if stale:
            self.run("image", "rm", *stale, check=False)
        self.run("image", "prune", "--force", check=False)


# Recipes ----------------------------------------------------------------------------------------------------
def _build_base(docker: DockerEngine, image: Image) -> None:
    mirror = os.environ.get(DEBIAN_MIRROR_ENV, DEFAULT_DEBIAN_MIRROR)
    with tempfile.TemporaryDirectory(prefix="mro-base-", dir=images_dir()) as tmp:
        rootfs = Path(tmp) / "rootfs"
        _run(
            ["debootstrap", "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}", DEBIAN_SUITE,
             str(rootfs), mirror],
            "debootstrap",
        )  # fmt: skip
        # pip and venv where the public python image has them: `python`, `pip` on PATH.
        _run(["chroot", str(rootfs), "python3", "-m", "venv", "/opt/python"], "venv in the base")
        if HOST_CA_BUNDLE.is_file():  # this machine's trust (it may reach PyPI through its own CA)
            shutil.copyfile(HOST_CA_BUNDLE, rootfs / str(HOST_CA_BUNDLE).lstrip("/"))
        (rootfs / "etc" / "pip.conf").write_text(f"[global]\ncert = {HOST_CA_BUNDLE}\n")
        for unused in ("var/cache/apt", "var/lib/apt/lists", "usr/share/doc", "usr/share/man",
                       "usr/share/info", "usr/share/locale"):  # fmt: skip
            shutil.rmtree(rootfs / unused, ignore_errors=True)
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        assert tar.stdout is not None
        path = "/opt/python/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        env = {**os.environ, "DOCKER_HOST": f"unix://{docker.socket}"}
        imported = subprocess.run(
            ["/usr/bin/docker", "import", "--change", f"ENV PATH={path}", "--change", 'CMD ["python"]', "-",
             image.ref],
            stdin=tar.stdout, capture_output=True, env=env,
        )  # fmt: skip
        tar.wait()
        if imported.returncode != 0 or tar.returncode != 0:
            raise ToolError(f"docker import of the base failed: {imported.stderr.decode()[-2000:]}")


def _build_operator(docker: DockerEngine, images: ImageSet, root: Path) -> None:
    docker.run(
        "build", "--network=host", f"--build-arg=PYTHON_IMAGE={images.base.ref}", f"--tag={images.operator.ref}",
        str(root),
    )  # fmt: skip


def _build_model_server(docker: DockerEngine, images: ImageSet) -> None:
    dockerfile = (
        f"FROM {images.operator.ref}\n"
        f'RUN ["python", "-c", "import {POD_SERVER_MODULE}"]\n'
        f'ENTRYPOINT ["python", "-m", "{POD_SERVER_MODULE}"]\n'
        "CMD []\n"
    )
    docker.run("build", f"--tag={images.model_server.ref}", "-", stdin=dockerfile.encode())


def _build_pause(docker: DockerEngine, image: Image) -> None:
    with tempfile.TemporaryDirectory(prefix="mro-pause-") as tmp:
        source = Path(tmp) / "pause.c"
        source.write_text(PAUSE_C)
        rootfs = Path(tmp) / "rootfs"
        rootfs.mkdir()
        _run(["gcc", "-static", "-Os", "-s", "-o", str(rootfs / "pause"), str(source)], "gcc pause.c")
        archive = Path(tmp) / "pause.tar"
        _run(["tar", "-C", str(rootfs), "-cf", str(archive), "pause"], "tar pause")
        docker.run(
            "import", "--change", 'ENTRYPOINT ["/pause"]', "--change", "USER 65535:65535", str(archive),
            image.ref,
        )  # fmt: skip


def _run(argv: list[str], what: str) -> None:
    result = subprocess.run(argv, capture_output=True, text=True)
    if result.returncode != 0:
        raise ToolError(f"{what} failed ({result.returncode}):\n{(result.stdout + result.stderr)[-3000:]}")


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    """One builder at a time on this machine (parallel test workers, other checkouts)."""
    images_dir().mkdir(parents=True, exist_ok=True)
    with (images_dir() / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def ensure_images(log: Callable[[str], None] = print, root: Path = REPO_ROOT) -> ImageSet:
    """Builds the images of this checkout unless their archive is cached; a warm run only checks one file."""
    images = image_set(root)
    if images.present():
        log(f"  {'images':<13} cached   {images.archive}")
        return images
    reason = docker_missing()
    if reason:
        raise ToolError(f"cannot build the container images: {reason}")
    with _locked():
        images = image_set(root)
        if images.present():
            return images
        with DockerEngine(log) as docker:
            steps: list[tuple[Image, Callable[[], None]]] = [
                (images.base, lambda: _build_base(docker, images.base)),
                (images.operator, lambda: _build_operator(docker, images, root)),
                (images.model_server, lambda: _build_model_server(docker, images)),
                (images.pause, lambda: _build_pause(docker, images.pause)),
            ]
            for image, build in steps:
                if docker.has(image.ref):
                    log(f"  {image.name:<13} cached   {image.ref} (in the Docker engine's data root)")
                    continue
                started = time.monotonic()
                log(f"  {image.name:<13} building {image.ref} ...")
                build()
                log(f"  {image.name:<13} ready    in {time.monotonic() - started:.0f}s")
            started = time.monotonic()
            docker.save(images)
            log(f"  {'images':<13} saved    in {time.monotonic() - started:.0f}s to {images.archive}")
    return images
