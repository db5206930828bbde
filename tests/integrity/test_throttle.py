"""--max-rate paces verification reads; a stop request ends a paced wait at once."""

from __future__ import annotations

import io
import threading

import pytest
from django.core.management import CommandError, call_command

from pobsync_runner import safe_read
from pobsync_runner.management.commands.verify import rate
from pobsync_runner.safe_read import Stopped, Throttle


@pytest.fixture
def clock(monkeypatch):
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    monkeypatch.setattr(safe_read.time, "monotonic", lambda: now[0])
    monkeypatch.setattr(safe_read.time, "sleep", sleep)
    return now


def test_it_reads_no_faster_than_the_rate(clock):
    throttle = Throttle(1000, None)
    for _ in range(10):
        throttle.account(500)
    assert clock[0] == pytest.approx(5.0)  # 5,000 bytes at 1,000 bytes/s


def test_without_a_rate_it_never_waits(clock):
    throttle = Throttle(None, None)
    throttle.account(10**12)
    assert clock[0] == 0


def test_a_stop_request_ends_the_wait(clock):
    stop = threading.Event()
    throttle = Throttle(1, stop)
    stop.set()
    with pytest.raises(Stopped):
        throttle.account(10**9)
    assert clock[0] < 1


@pytest.mark.parametrize("raw,value", [("50M", 50 << 20), ("800k", 800 << 10), ("1000", 1000)])
def test_rates_read_like_bwlimit(raw, value):
    assert rate(raw) == value


@pytest.mark.parametrize(
    "args,message",
    [
        (["--max-rate", "fast"], "is not a rate"),
        (["--max-rate", "0"], "is not a rate"),
        (["--sample", "0"], "above 0 and at most 100"),
        (["--sample", "150"], "above 0 and at most 100"),
        (["--since-days", "-1"], "is not a number of days"),
    ],
)
def test_bad_options_are_one_line(db, args, message):
    with pytest.raises(CommandError, match=message):
        call_command("verify", "web1", *args, stdout=io.StringIO())
