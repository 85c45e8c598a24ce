"""Helpers for the plugin's integration tests: run it as a real subprocess, make rollouts, read them back."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path

from modelrollout.identity import GROUP, PLURAL, VERSION
from tests.support.operator import BIN, create_rollout, eventually, phase, read_rollout, rollout_spec

__all__ = [
    "BIN",
    "COMMAND_ID",
    "GROUP",
    "PLUGIN",
    "PLURAL",
    "VERSION",
    "Result",
    "create_rollout",
    "eventually",
    "phase",
    "plugin",
    "read_rollout",
    "rollout_spec",
]
PLUGIN = BIN / "kubectl-modelrollout"
COMMAND_ID = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ-[0-9a-f]{6}"


@dataclass
class Result:
    code: int
    out: str
    err: str

    def __str__(self) -> str:
        return f"exit {self.code}\nstdout:\n{self.out}\nstderr:\n{self.err}"


async def plugin(kubeconfig: Path, namespace: str, *args: str, limit: float = 120.0) -> Result:
    """Runs the installed console script `kubectl-modelrollout` with kubectl's connection flags."""
    assert PLUGIN.is_file(), f"{PLUGIN} is missing: install the project (make venv)"
    process = await asyncio.create_subprocess_exec(
        str(PLUGIN),
        *args,
        "--kubeconfig",
        str(kubeconfig),
        "-n",
        namespace,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "COLUMNS": "200"},
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), limit)
    except TimeoutError:
        process.kill()
        out, err = await process.communicate()
        raise AssertionError(
            f"kubectl-modelrollout {' '.join(args)} did not finish in {limit}s:\n{out.decode()}\n{err.decode()}"
        ) from None
    return Result(int(process.returncode or 0), out.decode(), err.decode())
