"""Runners running the real engine (rsync over the real loopback sshd): crash recovery,
fencing, SIGTERM, and the end-to-end path from a cron schedule to a snapshot on disk."""

from __future__ import annotations

import os
import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.engine.slow_transfer import staging_dirs, temp_file_started
from tests.queue.procs import (
    LEASE_TTL,
    alive,
    descendants,
    engine_config,
    exit_code,
    hourly_cron_due_now,
    log_text,
    rsync_processes,
    wait_for,
)

pytestmark = [pytest.mark.slow, pytest.mark.sshd]
SLOW_RSYNC = ["--bwlimit=64"]  # KiB/s: the 4 MiB file takes a minute; we stop it long before


@pytest.fixture
def site(procdb, sshd, tmp_path):
    """Backup root + hosts web1/web2 whose sources sshd serves; returns a helper."""
    root = tmp_path / "backups"
    root.mkdir()
    sources = {}
    for name in ("web1", "web2"):
        src = tmp_path / f"remote-{name}" / "data"
        src.mkdir(parents=True)
        (src / "hello.txt").write_text(f"hello from {name}\n")
        (src / "big.bin").write_bytes(os.urandom(4 * 1024 * 1024))
        sources[name] = src
    procdb.tool(
        "configure",
        config=engine_config(root, sshd),
        hosts=[
            {"name": name, "sources": [str(src)], "rsync_options": SLOW_RSYNC}
            for name, src in sources.items()
        ],
    )
    return root, sources


def job_state(procdb, job_id: int) -> dict:
    return next(j for j in procdb.tool("snapshot")["jobs"] if j["id"] == job_id)


def start_one_slow_backup(procdb, tmp_path, sources) -> tuple:
    job = procdb.tool("enqueue", host="web1")["job"]
    runner = procdb.spawn(tmp_path / "runner-a.log", "runner", "--loop", "--interval", "0.5")
    wait_for(
        lambda: rsync_processes(str(sources["web1"])),
        timeout=30,
        step=0.2,
        what="rsync to start",
    )
    rsyncs = [p for p in descendants(runner.pid) if "rsync" in Path(f"/proc/{p}/comm").read_text()]
    assert rsyncs, "rsync is not a descendant of the runner"
    return job, runner, rsyncs


def test_it_recovers_from_kill_9_mid_backup_with_one_retry(procdb, site, tmp_path):
    root, sources = site
    job, runner, rsyncs = start_one_slow_backup(procdb, tmp_path, sources)
    runner.send_signal(signal.SIGKILL)
    runner.wait(10)
    killed_at = time.monotonic()

    # rsync dies with its runner (own process group + PR_SET_PDEATHSIG): no orphans,
    # neither the local rsync nor the sshd-side server.
    wait_for(
        lambda: not any(alive(p) for p in rsyncs) and not rsync_processes(str(sources["web1"])),
        timeout=10,
        step=0.2,
        what="rsync to die with its runner",
    )
    # The host stays held until the lease expires; nobody else may start it meanwhile.
    state = procdb.tool("snapshot")
    web1 = next(h for h in state["hosts"] if h["name"] == "web1")
    assert web1["running_job_id"] == job
    assert job_state(procdb, job)["state"] == "running"

    procdb.tool("update_host", name="web1", rsync_options=[])  # let the retry finish fast
    runner_b = procdb.spawn(tmp_path / "runner-b.log", "runner", "--loop", "--interval", "0.5")
    wait_for(
        lambda: job_state(procdb, job)["state"] == "succeeded",
        timeout=60,
        what="the retry to succeed",
    )
    assert time.monotonic() - killed_at >= LEASE_TTL - 1.5  # not before the lease ran out
    done = job_state(procdb, job)
    assert done["attempts"] == 2 and f":{runner_b.pid}:" in done["worker_id"]
    state = procdb.tool("snapshot")
    assert [s["state"] for s in state["snapshots"] if s["host_id"] == web1["id"]].count(
        "complete"
    ) == 1
    assert [r["outcome"] for r in state["runs"]] == ["failed", "success"]  # crash recorded
    assert state["runs"][0]["message"] == "runner lost: lease expired"  # by the reaper
    assert (root / "web1").is_dir()
    assert all(h["running_job_id"] is None for h in state["hosts"])
    runner_b.send_signal(signal.SIGTERM)
    assert exit_code(runner_b, 15) == 0, log_text(runner_b)


def test_it_kills_rsync_and_writes_nothing_when_the_lease_is_lost(procdb, site, tmp_path):
    _, sources = site
    job, runner, rsyncs = start_one_slow_backup(procdb, tmp_path, sources)
    procdb.tool("steal_lease", job=job)
    wait_for(
        lambda: not any(alive(p) for p in rsyncs) and not rsync_processes(str(sources["web1"])),
        timeout=10,
        step=0.2,
        what="the fenced runner to kill rsync",
    )
    wait_for(lambda: "lease lost" in log_text(runner), timeout=10, what="the runner to say so")
    time.sleep(1.5)  # give a misbehaving runner time to write a result
    stolen = job_state(procdb, job)
    assert stolen["state"] == "running" and stolen["lease_token"] == "stolen"
    runs = procdb.tool("snapshot")["runs"]
    assert [r["outcome"] for r in runs] == ["cancelled"]
    runner.send_signal(signal.SIGTERM)
    assert exit_code(runner, 15) == 0, log_text(runner)


def test_it_requeues_the_running_job_on_sigterm_within_ten_seconds(procdb, site, tmp_path):
    root, sources = site
    job, runner, rsyncs = start_one_slow_backup(procdb, tmp_path, sources)
    # Once data has arrived (a run that transferred nothing would leave no partial).
    wait_for(
        lambda: any(temp_file_started(d, "big.bin") for d in staging_dirs(root / "web1")),
        timeout=30,
        step=0.1,
        what="rsync to write big.bin",
    )
    asked = time.monotonic()
    runner.send_signal(signal.SIGTERM)
    assert exit_code(runner, 15) == 0, log_text(runner)
    assert time.monotonic() - asked < 10
    assert not any(alive(p) for p in rsyncs)
    requeued = job_state(procdb, job)
    assert requeued["state"] == "queued" and requeued["attempts"] == 0
    assert "SIGTERM" in requeued["error"]
    state = procdb.tool("snapshot")
    assert state["workers"] == [] and all(h["running_job_id"] is None for h in state["hosts"])
    assert [s["state"] for s in state["snapshots"]] == ["partial"]  # seeds the next run


def test_it_backs_up_two_hosts_from_a_cron_schedule_end_to_end(procdb, site, tmp_path):
    root, sources = site
    now = datetime.now(UTC)
    cron = hourly_cron_due_now(now)
    for name in ("web1", "web2"):
        procdb.tool("update_host", name=name, rsync_options=[])
        out = procdb.pobsync("schedule", name, "--cron", cron, "--prune")
        assert out.returncode == 0, out.stderr
    # Time passed in: a tick "ten minutes ago" puts next_run_at on a slot that is already
    # due now, so the live scheduler fires it at once instead of after a wait.
    earlier = (now - timedelta(minutes=10)).isoformat()
    procdb.tool("clear_next_run")
    tick = procdb.pobsync("scheduler", "--once", "--now", earlier)
    assert tick.returncode == 0 and "2 initialised" in tick.stdout, tick.stdout + tick.stderr

    scheduler = procdb.spawn(tmp_path / "sched.log", "scheduler", "--loop", "--interval", "1")
    runners = [
        procdb.spawn(tmp_path / f"runner{i}.log", "runner", "--loop", "--interval", "0.5")
        for i in range(2)
    ]

    def done():
        jobs = procdb.tool("snapshot")["jobs"]
        return len(jobs) == 2 and all(j["state"] == "succeeded" for j in jobs) and jobs

    jobs = wait_for(done, timeout=90, what="both scheduled backups to succeed")
    assert all(j["schedule_id"] and j["scheduled_for"] for j in jobs)
    for name in ("web1", "web2"):
        snapshots = [p for p in (root / name).iterdir() if p.name[:1].isdigit()]
        assert len(snapshots) == 1
        copied = next(snapshots[0].rglob("hello.txt"))
        assert copied.read_text() == f"hello from {name}\n"
    listing = procdb.pobsync("jobs")
    assert listing.stdout.count("succeeded") == 2 and "schedule" in listing.stdout
    workers = procdb.pobsync("workers").stdout
    assert workers.count("runner") == 2 and "scheduler" in workers
    health = procdb.pobsync("health", "--kind", "runner")
    assert health.returncode == 0, health.stderr
    for proc in [scheduler, *runners]:
        proc.send_signal(signal.SIGTERM)
    for proc in [scheduler, *runners]:
        assert exit_code(proc, 15) == 0, log_text(proc)
