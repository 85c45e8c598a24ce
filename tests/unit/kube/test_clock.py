"""The API server's clock as learnt from its answers' Date headers (whole seconds, round trips)."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime

import pytest

from modelrollout.kube.clock import ServerClock

SERVER_EPOCH = datetime(2026, 11, 21, 12, 0, 0, tzinfo=UTC).timestamp()


class Local:
    """This process's monotonic clock, moved by hand."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def date(seconds: float) -> str:
    return format_datetime(datetime.fromtimestamp(int(seconds), tz=UTC), usegmt=True)


def test_windows_of_whole_seconds_pin_the_offset_to_the_round_trip() -> None:
    local = Local()
    clock = ServerClock(local=local, wall=lambda: 0.0)
    offset = SERVER_EPOCH + 0.37 - local.t  # the server runs 0.37 s past a whole second when local reads t
    for step in range(40):
        sent = local.t
        local.t += 0.013  # the request is answered after 13 ms
        server = local.t - 0.006 + offset  # the server stamped it halfway
        clock.observe_date(date(server), sent, local.t)
        local.t += 0.29 * (step % 7 + 1)  # answers arrive at scattered fractions of a second
    assert clock.seconds() == pytest.approx(local.t + offset, abs=0.02)


def test_before_any_answer_the_wall_clock_is_used_and_afterwards_the_server_only() -> None:
    local = Local()
    clock = ServerClock(local=local, wall=lambda: SERVER_EPOCH + 3600)  # this node's clock is an hour ahead
    assert not clock.learnt
    assert clock.seconds() == SERVER_EPOCH + 3600
    clock.observe(SERVER_EPOCH, SERVER_EPOCH, local.t, local.t)
    assert clock.seconds() == pytest.approx(SERVER_EPOCH)
    local.t += 5
    assert clock.seconds() == pytest.approx(SERVER_EPOCH + 5)


def test_it_never_goes_back_and_follows_a_stepped_server_clock() -> None:
    local = Local()
    clock = ServerClock(local=local)
    clock.observe(SERVER_EPOCH, SERVER_EPOCH + 1, local.t, local.t)
    before = clock.seconds()
    clock.observe(SERVER_EPOCH - 30, SERVER_EPOCH - 30, local.t, local.t)  # the server's clock stepped back
    assert clock.offset() == pytest.approx(SERVER_EPOCH - 30 - local.t)
    assert clock.seconds() == before, "this process's decisions never see time go back"
    local.t += 60
    assert clock.seconds() == pytest.approx(SERVER_EPOCH + 30)


def test_a_missing_or_unreadable_date_is_ignored() -> None:
    clock = ServerClock(local=Local())
    clock.observe_date(None, 0, 0)
    clock.observe_date("yesterday", 0, 0)
    assert not clock.learnt
