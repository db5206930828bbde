"""A real `pobsync scheduler --loop --interval 60` enqueues a slot within 2 s of it,
whenever in the minute the scheduler itself was started."""

from __future__ import annotations

import signal
import time
from datetime import UTC, datetime

import pytest

from tests.queue.procs import exit_code, log_text, wait_for, when

pytestmark = [pytest.mark.slow]


def test_it_enqueues_a_slot_within_two_seconds_of_it(procdb, tmp_path):
    for argv in (
        ("configure-global", "--backup-root", str(tmp_path)),
        ("configure-host", "web1", "--address", "127.0.0.1", "--source", "/srv"),
    ):
        out = procdb.pobsync(*argv)
        assert out.returncode == 0, out.stdout + out.stderr
    # Start well inside a minute: a scheduler counting 60 s from its own start would
    # then enqueue the next slot 10-40 s late. The schedule is made inside that window
    # too, so its first slot is still ahead when the scheduler starts (not a catch-up).
    while not 10 <= datetime.now(UTC).second <= 30:
        time.sleep(0.2)
    out = procdb.pobsync("schedule", "web1", "--cron", "* * * * *")
    assert out.returncode == 0, out.stdout + out.stderr
    scheduler = procdb.spawn(tmp_path / "sched.log", "scheduler", "--loop", "--interval", "60")
    jobs = wait_for(
        lambda: procdb.tool("snapshot")["jobs"], timeout=80, step=0.25, what="the slot's job"
    )
    (job,) = jobs
    late = (when(job["created_at"]) - when(job["scheduled_for"])).total_seconds()
    assert 0 <= late < 2, (job, log_text(scheduler))
    assert when(job["scheduled_for"]).second == 0
    scheduler.send_signal(signal.SIGTERM)
    assert exit_code(scheduler, 15) == 0, log_text(scheduler)
