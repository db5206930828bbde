"""The queue protocol under real, concurrent processes (stand-in executor, no rsync)."""

from __future__ import annotations

import json
import signal
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest

from tests.queue.procs import exit_code, log_text, wait_for, when

# The drain waits up to 150 s on its own: more than the global 300 s timeout allows
# once MariaDB and a loaded CI machine add their share.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]
SHORT = {"POBSYNC_RUNNER_EXECUTOR": "tests.queue.executors.short"}


def test_it_runs_400_jobs_exactly_once_with_8_runner_processes(procdb, tmp_path):
    seeded = procdb.tool("seed_jobs", hosts=6, jobs=400)
    runners = [
        procdb.spawn(tmp_path / f"runner{i}.log", "runner", "--loop", "--interval", "0.2", **SHORT)
        for i in range(8)
    ]

    def drained():
        state = procdb.tool("snapshot")
        busy = [j for j in state["jobs"] if j["state"] in ("queued", "running")]
        return None if busy else state

    state = wait_for(drained, timeout=150, step=1.0, what="the queue to drain")
    for proc in runners:
        proc.send_signal(signal.SIGTERM)
    for proc in runners:
        assert exit_code(proc, 15) == 0, log_text(proc)

    jobs, runs = state["jobs"], state["runs"]
    assert len(jobs) == 400 and {j["id"] for j in jobs} == set(seeded["jobs"])
    assert all(j["state"] == "succeeded" and j["attempts"] == 1 for j in jobs), [
        j for j in jobs if j["state"] != "succeeded" or j["attempts"] != 1
    ][:3]
    runs_per_job = defaultdict(int)
    for run in runs:
        runs_per_job[run["job_id"]] += 1
    assert set(runs_per_job.values()) == {1} and len(runs_per_job) == 400  # exactly once
    by_host = defaultdict(list)
    for run in runs:
        by_host[run["host_id"]].append((when(run["started_at"]), when(run["finished_at"])))
    for spans in by_host.values():
        spans.sort()
        for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
            assert start >= end, "two runs of one host overlapped"
    assert len({j["worker_id"] for j in jobs}) >= 4  # the work was spread out
    logs = "".join(log_text(p) for p in runners)
    assert "Traceback" not in logs and "Deadlock" not in logs and "pass failed" not in logs
    assert procdb.tool("snapshot")["workers"] == []  # clean exits deregister
    assert all(h["running_job_id"] is None for h in procdb.tool("snapshot")["hosts"])


def test_it_enqueues_each_slot_once_with_3_schedulers_at_once(procdb, tmp_path):
    first = datetime(2025, 7, 3, 2, 0, tzinfo=UTC)
    procdb.tool("seed_schedules", count=40, cron="*/5 * * * *", next_run_at=first.isoformat())
    rounds = 3
    for k in range(rounds):
        now = (first + timedelta(minutes=5 * k, seconds=20)).isoformat()
        schedulers = [
            procdb.spawn(tmp_path / f"sched{k}.{i}.log", "scheduler", "--once", "--now", now)
            for i in range(3)
        ]
        for proc in schedulers:
            assert exit_code(proc, 60) == 0, log_text(proc)
        procdb.tool("finish_all")  # so "host already has a queued job" does not coalesce
    jobs = procdb.tool("snapshot")["jobs"]
    slots = {(j["schedule_id"], j["scheduled_for"]) for j in jobs}
    assert len(jobs) == len(slots) == 40 * rounds
    expected = {when((first + timedelta(minutes=5 * k)).isoformat()) for k in range(rounds)}
    assert {when(j["scheduled_for"]) for j in jobs} == expected


def test_it_stops_an_idle_runner_on_sigterm_within_two_seconds(procdb, tmp_path):
    runner = procdb.spawn(tmp_path / "runner.log", "runner", "--loop", "--interval", "30", **SHORT)
    wait_for(lambda: procdb.tool("snapshot")["workers"], timeout=30, what="registration")
    runner.send_signal(signal.SIGTERM)
    started = time.monotonic()
    assert exit_code(runner, 10) == 0
    assert time.monotonic() - started < 2.5
    assert procdb.tool("snapshot")["workers"] == []
    health = procdb.pobsync("health", "--kind", "runner")  # contract 3: gone means unhealthy
    assert health.returncode == 1 and "unhealthy" in health.stderr


def test_it_cancels_a_running_job_within_one_heartbeat(procdb, tmp_path):
    procdb.tool("seed_jobs", hosts=1, jobs=1)
    slow = dict(SHORT, POBSYNC_TEST_JOB_SECONDS="60")
    runner = procdb.spawn(tmp_path / "runner.log", "runner", "--loop", "--interval", "0.5", **slow)

    def running():
        jobs = procdb.tool("snapshot")["jobs"]
        return jobs[0] if jobs[0]["state"] == "running" else None

    job = wait_for(running, timeout=30, what="the job to start")
    out = procdb.pobsync("cancel", str(job["id"]))
    assert "cancel requested" in out.stdout, out.stderr
    asked = time.monotonic()
    wait_for(
        lambda: procdb.tool("snapshot")["jobs"][0]["state"] == "cancelled",
        timeout=15,
        step=0.3,
        what="cancellation",
    )
    assert time.monotonic() - asked < 8  # one heartbeat (1 s) + the stop poll + tool startup
    state = procdb.tool("snapshot")
    assert state["runs"][0]["outcome"] == "cancelled"
    assert state["hosts"][0]["running_job_id"] is None
    runner.send_signal(signal.SIGTERM)
    assert exit_code(runner, 10) == 0


@pytest.mark.mariadb
def test_it_writes_the_result_after_the_server_closed_an_idle_connection(mariadb_procdb):
    procdb = mariadb_procdb  # wait_timeout is a MariaDB server setting
    procdb.tool("seed_jobs", hosts=1, jobs=1)
    runner = procdb.pobsync(
        "runner", "--once", POBSYNC_RUNNER_EXECUTOR="tests.queue.executors.idle_disconnect"
    )
    assert runner.returncode == 0, runner.stdout + runner.stderr
    job = procdb.tool("snapshot")["jobs"][0]
    assert job["state"] == "succeeded", runner.stdout + runner.stderr


@pytest.mark.mariadb
def test_it_claims_through_the_claim_index_on_mariadb(mariadb_procdb):
    procdb = mariadb_procdb
    procdb.tool("seed_jobs", hosts=500, jobs=3000)  # many free hosts: tempts a host-first plan
    procdb.tool("finish_all")
    procdb.tool("seed_jobs", hosts=500, jobs=5000, prefix="r")
    explained = procdb.tool("explain")
    plan = explained["plan"]
    job_rows = [line for line in plan.splitlines() if "backupjob" in line]
    assert job_rows and "job_claim_idx" in job_rows[0], plan
    # The key chosen (not just a possible key), read in index order: no filesort.
    tables = list(json_tables(explained["json"]))
    job_tables = [t for t in tables if t["table_name"] == "pobsync_models_backupjob"]
    assert [t.get("key") for t in job_tables] == ["job_claim_idx"], plan
    assert "filesort" not in json.dumps(explained["json"]), explained["json"]


def json_tables(node):
    """Every "table" object of a MariaDB EXPLAIN FORMAT=JSON document."""
    if isinstance(node, dict):
        if "table_name" in node:
            yield node
        for value in node.values():
            yield from json_tables(value)
    elif isinstance(node, list):
        for value in node:
            yield from json_tables(value)
