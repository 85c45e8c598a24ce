"""The API server's clock, learnt from its answers: the one clock every operator pod shares.

Decisions are timed (a pause has passed, an analysis is due, a deadline ran out) against times in the status,
which an earlier pod may have written. Pods' clocks disagree, and a replacement pod may run on a node whose
clock is minutes off; every pod talks to the API server. So a tick's `now` is the server's time: each answer's
`Date` header says the server's clock was within [D, D + 1 s) at some moment between sending the request and
reading the answer. Intersecting those windows over recent answers pins the offset from this process's
monotonic clock to within a round trip; `now()` is the monotonic clock plus that offset, and never goes back.
Pure bookkeeping: the client feeds it (`observe_date`), the fake API feeds it exact times (`observe`).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

RECENT = 64
"""Answers whose windows are intersected (older ones age out, so a drifting or stepped server clock is followed)."""


class ServerClock:
    """The API server's time, estimated from when its answers were sent and what their Date header said."""

    def __init__(
        self, local: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time
    ) -> None:
        self.local = local
        """This process's clock (monotonic: never stepped by NTP)."""
        self.wall = wall
        """This machine's wall clock, used only until the server has answered once."""
        self._bounds: deque[tuple[float, float]] = deque(maxlen=RECENT)
        self._last = 0.0

    @property
    def learnt(self) -> bool:
        """Whether the server has answered at least once."""
        return bool(self._bounds)

    def observe(self, earliest: float, latest: float, sent: float, received: float) -> None:
        """The server's clock read between `earliest` and `latest` (epoch seconds) at some local time between
        `sent` and `received` (this clock's seconds)."""
        low, high = earliest - received, latest - sent
        if self._bounds:
            current_low = max(b[0] for b in self._bounds)
            current_high = min(b[1] for b in self._bounds)
            if max(current_low, low) > min(current_high, high):
                self._bounds.clear()  # the server's clock stepped (or another server answered): start over
        self._bounds.append((low, high))

    def observe_date(self, header: str | None, sent: float, received: float) -> None:
        """An HTTP Date header (whole seconds) of an answer to a request sent at `sent`, read at `received`."""
        if not header:
            return
        try:
            date = parsedate_to_datetime(header)
        except (TypeError, ValueError):
            return
        if date.tzinfo is None:
            date = date.replace(tzinfo=UTC)
        stamp = date.timestamp()
        self.observe(stamp, stamp + 1.0, sent, received)

    def offset(self) -> float | None:
        """Server time minus this process's clock, or None before the first answer."""
        if not self._bounds:
            return None
        low = max(b[0] for b in self._bounds)
        high = min(b[1] for b in self._bounds)
        return (low + high) / 2

    def seconds(self) -> float:
        """The server's time now, in epoch seconds; never less than an earlier answer of this method."""
        offset = self.offset()
        if offset is None:
            return self.wall()
        self._last = max(self._last, self.local() + offset)
        return self._last

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.seconds(), tz=UTC)
