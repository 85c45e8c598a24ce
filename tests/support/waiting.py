"""Waiting on conditions instead of on the clock: a test proceeds as soon as what it needs has happened."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


async def until(check: Callable[[], bool], what: str, within: float = 10.0, poll: float = 0.01) -> None:
    """Returns once `check()` holds; fails naming `what` if it does not within `within` seconds.

    The bound only turns a hang into a clear failure; a passing test never waits for it.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not check():
        if loop.time() > deadline:
            raise AssertionError(f"{what}: not reached within {within:g}s")
        await asyncio.sleep(poll)
