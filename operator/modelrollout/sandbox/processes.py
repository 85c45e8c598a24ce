"""Local server processes for the sandbox: start detached, probe until ready, stop by process group."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

_rng = random.SystemRandom()


class SandboxError(RuntimeError):
    """A sandbox component failed; the message names the component and the cause."""


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


_handed_out: set[int] = set()
PORT_RANGE_ENV = "MODELROLLOUT_PORT_RANGE"
"""`LOW-HIGH`: pick sandbox ports only in this range (parallel test workers each get their own)."""


def _port_range() -> tuple[int, int]:
    high = _ephemeral_low()
    chosen = os.environ.get(PORT_RANGE_ENV, "")
    if chosen:
        low_text, _, high_text = chosen.partition("-")
        return int(low_text), int(high_text)
    return max(1024, high - 12000), high


def free_port() -> int:
    """A free port on 127.0.0.1 below the ephemeral range.

    Ports the kernel hands to outgoing connections come from the ephemeral range; choosing below it keeps a
    port picked now from being taken by some client's connection before the server binds it.
    """
    low, high = _port_range()
    for _ in range(200):
        port = _rng.randrange(low, high)
        if port in _handed_out:
            continue  # picked earlier in this process and perhaps not bound yet (a sandbox picks all its ports first)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            _handed_out.add(port)
            return port
    raise SandboxError(f"no free port found on 127.0.0.1 in {low}-{high}")


def ensure_port_free(component: str, port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as error:
            raise SandboxError(
                f"{component}: port 127.0.0.1:{port} is already in use ({error.strerror})"
            ) from None


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
    started: int  # start time of the process in clock ticks since boot (/proc/<pid>/stat field 22)

    def alive(self) -> bool:
        fields = _stat_fields(self.pid)
        # A recycled pid belongs to someone else: the start time tells (cmdline can be empty mid-exec).
        return fields is not None and fields[0] != "Z" and int(fields[19]) == self.started

    def kill(self) -> None:
        """SIGKILL at once, as a node failure or an OOM kill would: no chance to clean up."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while self.alive() and time.monotonic() < deadline:
            self._reap()
            time.sleep(0.05)
        self._reap()

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

    def _reap(self) -> str | None:
        """Collects our exited child, if it is one; returns how it ended."""
        try:
            pid, code = os.waitpid(self.pid, os.WNOHANG)
        except (ChildProcessError, OSError):
            return None
        if pid == 0:
            return None
        if os.WIFSIGNALED(code):
            return f"killed by signal {os.WTERMSIG(code)}"
        return f"exit code {os.waitstatus_to_exitcode(code)}"


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
    fields = _stat_fields(popen.pid)
    # Popen objects would warn when collected while the child still runs; we track the pid ourselves.
    popen.returncode = 0
    return Process(name=name, pid=popen.pid, log=log, started=int(fields[19]) if fields else -1)


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name, starting with the state."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return stat.rsplit(")", 1)[1].split()


def wait_ready(process: Process, probe: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process.alive():
            ended = process._reap() or "exited"
            raise SandboxError(
                f"{process.name} exited during start-up ({ended}); last lines of {process.log}:\n{tail(process.log)}"
            )
        if probe():
            return
        time.sleep(0.2)
    raise SandboxError(
        f"{process.name} was not ready after {timeout:.0f}s; last lines of {process.log}:\n{tail(process.log)}"
    )
