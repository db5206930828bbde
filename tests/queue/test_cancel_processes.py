"""`pobsync cancel` against a real runner mid-rsync (real sshd, slow transfer): rsync is
gone within seconds, the run and job say cancelled, and no extra lease write was made."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.queue.procs import (
    alive,
    descendants,
    engine_config,
    log_text,
    rsync_processes,
    wait_for,
)

pytestmark = [pytest.mark.slow, pytest.mark.sshd]
CANCEL_BOUND = 5.0  # seconds from `pobsync cancel` returning to rsync gone (issue 10)
# A heartbeat far longer than the test: the cancel can only be seen by the cheap poll.
SLOW_HEARTBEAT = {"POBSYNC_HEARTBEAT_INTERVAL": "60", "POBSYNC_LEASE_TTL": "300"}


@pytest.fixture
def slow_host(procdb, sshd, tmp_path) -> Path:
    root = tmp_path / "backups"
    root.mkdir()
    src = tmp_path / "remote" / "data"
    src.mkdir(parents=True)
    (src / "big.bin").write_bytes(os.urandom(4 * 1024 * 1024))  # a minute at 64 KiB/s
    procdb.tool(
        "configure",
        config=engine_config(root, sshd),
        hosts=[{"name": "web1", "sources": [str(src)], "rsync_options": ["--bwlimit=64"]}],
    )
    return src


def test_it_stops_rsync_within_seconds_of_pobsync_cancel(procdb, slow_host, tmp_path):
    job = procdb.tool("enqueue", host="web1")["job"]
    runner = procdb.spawn(
        tmp_path / "runner.log", "runner", "--loop", "--interval", "0.5", **SLOW_HEARTBEAT
    )
    wait_for(lambda: rsync_processes(str(slow_host)), timeout=30, step=0.1, what="rsync")
    ours = [p for p in descendants(runner.pid) if "rsync" in Path(f"/proc/{p}/comm").read_text()]
    assert ours, "rsync is not a descendant of the runner"
    time.sleep(1.0)  # well into the transfer

    out = procdb.pobsync("cancel", str(job))
    asked = time.monotonic()
    assert out.returncode == 0 and "within seconds" in out.stdout, out.stdout + out.stderr
    wait_for(
        lambda: not any(alive(p) for p in ours) and not rsync_processes(str(slow_host)),
        timeout=30,
        step=0.05,
        what="rsync (both ends) to stop",
    )
    assert time.monotonic() - asked < CANCEL_BOUND, log_text(runner)

    wait_for(
        lambda: procdb.tool("snapshot")["jobs"][0]["state"] != "running",
        timeout=15,
        what="the job to finish",
    )
    state = procdb.tool("snapshot")
    (done,) = state["jobs"]
    assert done["state"] == "cancelled" and done["error"].startswith("cancelled"), done
    assert [r["outcome"] for r in state["runs"]] == ["cancelled"]
    # Seen by the read-only poll, not by a lease renewal: the lease was written once,
    # by the claim (a renewal would have moved heartbeat_at past started_at).
    assert done["heartbeat_at"] == done["started_at"], done
    assert "cancel requested, stopping rsync" in log_text(runner)
    assert runner.poll() is None  # the runner carries on with the next job
