"""Local server processes for the sandbox: start detached, probe until ready, stop by process group."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx


class SandboxError(RuntimeError):
    """A sandbox component failed; the message names the component and the cause."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ensure_port_free(component: str, port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as error:
            raise SandboxError(f"{component}: port 127.0.0.1:{port} is already in use ({error.strerror})") from None


def tail(path: Path, lines: int = 25) -> str:
    try:
        content = path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return "(no log written)"
    return "\n".join(content[-lines:]) or "(log is empty)"


def http_ok(url: str, *, token: str | None = None, expect: str | None = None) -> Callable[[], bool]:
    """A readiness probe: GET url answers 200 (and contains `expect`, when given)."""

    headers = {"Authorization": f"Bearer {token}"} if token else {}

    def probe() -> bool:
        try:
            response = httpx.get(url, headers=headers, verify=False, timeout=2.0)
        except httpx.HTTPError:
            return False
        return response.status_code == 200 and (expect is None or expect in response.text)

    return probe


@dataclass
class Process:
    """One started component; `pid` leads its own process group so stop() reaps its children too."""

    name: str
    pid: int
    log: Path
    argv0: str

    def alive(self) -> bool:
        try:
            cmdline = Path(f"/proc/{self.pid}/cmdline").read_bytes()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            return False
        # A recycled pid belongs to someone else: only ours if it still runs our binary.
        if not cmdline.split(b"\0", 1)[0].endswith(os.fsencode(Path(self.argv0).name)):
            return False
        stat = Path(f"/proc/{self.pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"

    def stop(self, grace: float = 10.0) -> None:
        if not self.alive():
            self._reap()
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            self._reap()
            if not self.alive():
                return
            time.sleep(0.1)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)
        self._reap()

    def _reap(self) -> None:
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(self.pid, os.WNOHANG)


def start(name: str, argv: Sequence[str], log: Path, env: dict[str, str] | None = None) -> Process:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        try:
            popen = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**os.environ, **(env or {})},
            )
        except OSError as error:
            raise SandboxError(f"{name}: cannot start {argv[0]}: {error.strerror}") from None
    # Popen objects would warn when collected while the child still runs; we track the pid ourselves.
    popen.returncode = 0
    return Process(name=name, pid=popen.pid, log=log, argv0=str(argv[0]))


def wait_ready(process: Process, probe: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process.alive():
            raise SandboxError(f"{process.name} exited during start-up; last lines of {process.log}:\n{tail(process.log)}")
        if probe():
            return
        time.sleep(0.2)
    raise SandboxError(
        f"{process.name} was not ready after {timeout:.0f}s; last lines of {process.log}:\n{tail(process.log)}"
    )
