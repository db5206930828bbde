"""Scheduled verification through the queue on real runner processes: a verify schedule
fires, a runner claims the verify job like a backup, and it never runs beside a backup
of the same host (one per-host mutex for every kind, and the host's disk lock)."""

from __future__ import annotations

import os
import signal
from datetime import UTC, datetime, timedelta

import pytest

from tests.queue.procs import exit_code, hourly_cron_due_now, log_text, wait_for, when

pytestmark = [pytest.mark.slow, pytest.mark.sshd]


@pytest.fixture
def web1(procdb, sshd, tmp_path):
    root = tmp_path / "backups"
    root.mkdir()
    src = tmp_path / "remote" / "data"
    src.mkdir(parents=True)
    (src / "hello.txt").write_text("hello\n")
    (src / "big.bin").write_bytes(os.urandom(1024 * 1024))
    procdb.tool(
        "configure",
        config={
            "backup_root": str(root),
            "ssh_user": sshd.user,
            "ssh_port": sshd.port,
            "ssh_key_path": str(sshd.client_key_path),
            "known_hosts_path": str(sshd.known_hosts_path),
            "connect_timeout": 5,
            "rsync_timeout": 60,
        },
        hosts=[{"name": "web1", "sources": [str(src)], "rsync_options": []}],
    )
    return root, src


SCHEDULE_COMMANDS = {
    # the host's own verification schedule
    "host": (("schedule", "web1", "--verify", "--cron"), "verify schedule created"),
    # the global one, which every host without its own follows
    "global": (("configure-global", "--verify-cron"), "1 host(s) added"),
}


@pytest.mark.parametrize("which", sorted(SCHEDULE_COMMANDS))
def test_a_scheduled_verify_job_runs_on_a_runner_and_never_beside_a_backup(
    procdb, web1, tmp_path, which
):
    root, src = web1
    first = procdb.pobsync("backup", "web1")
    assert first.returncode == 0, first.stderr
    procdb.tool("update_host", name="web1", rsync_options=["--bwlimit=256"])  # ~4 s backup
    command, said = SCHEDULE_COMMANDS[which]
    now = datetime.now(UTC)
    out = procdb.pobsync(*command, hourly_cron_due_now(now))
    assert out.returncode == 0 and said in out.stdout, out.stdout + out.stderr
    earlier = (now - timedelta(minutes=10)).isoformat()
    procdb.tool("clear_next_run")
    tick = procdb.pobsync("scheduler", "--once", "--now", earlier)
    assert tick.returncode == 0 and "1 initialised" in tick.stdout, tick.stdout + tick.stderr
    (src / "big.bin").write_bytes(os.urandom(1024 * 1024))  # the backup has work to do
    backup_job = procdb.tool("enqueue", host="web1")["job"]

    runners = [
        procdb.spawn(tmp_path / f"runner{i}.log", "runner", "--loop", "--interval", "0.3")
        for i in range(2)
    ]
    scheduler = procdb.spawn(tmp_path / "sched.log", "scheduler", "--loop", "--interval", "1")

    def done():
        state = procdb.tool("snapshot")
        jobs = state["jobs"]
        finished = len(jobs) == 2 and all(j["state"] in ("succeeded", "failed") for j in jobs)
        return finished and state

    def explain():
        logs = "".join(f"--- {p.args[-4:]}\n{log_text(p)[-3000:]}" for p in [scheduler, *runners])
        return f"last state: {procdb.tool('snapshot')}\n{logs}"

    state = wait_for(
        done, timeout=120, what="the backup and the verify job to finish", explain=explain
    )
    jobs = {j["kind"]: j for j in state["jobs"]}
    assert jobs["backup"]["id"] == backup_job and jobs["backup"]["state"] == "succeeded"
    verify_job = jobs["verify"]
    assert verify_job["state"] == "succeeded", verify_job["error"]
    assert verify_job["schedule_id"] and verify_job["scheduled_for"]
    (run,) = [r for r in state["runs"] if r["job_id"] == backup_job]
    (check,) = state["verify_runs"]
    assert check["job_id"] == verify_job["id"] and check["outcome"] == "ok"
    assert check["files_read"] >= 2
    # Never side by side: one finished before the other started.
    backup_span = (when(run["started_at"]), when(run["finished_at"]))
    verify_span = (when(check["started_at"]), when(check["finished_at"]))
    assert backup_span[1] <= verify_span[0] or verify_span[1] <= backup_span[0], (
        backup_span,
        verify_span,
    )
    verified = [s for s in state["snapshots"] if s["integrity"] == "verified"]
    assert verified and all(s["fully_verified_at"] for s in verified)
    for proc in [scheduler, *runners]:
        proc.send_signal(signal.SIGTERM)
    for proc in [scheduler, *runners]:
        assert exit_code(proc, 15) == 0, log_text(proc)
