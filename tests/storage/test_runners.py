"""Runners serving storages, as real processes on MariaDB: each job runs on a runner
that serves its host's storage, a storage's cap holds under load, a job on a storage
nobody serves waits and says why."""

from __future__ import annotations

import json
import os
import signal
from collections import defaultdict
from pathlib import Path

import pytest

from tests.queue.procs import engine_config, log_text, wait_for, when
from tests.support.smallfs import separate_mount

pytestmark = [pytest.mark.slow, pytest.mark.mariadb]
SHORT = {
    "POBSYNC_RUNNER_EXECUTOR": "tests.queue.executors.short",
    "POBSYNC_TEST_JOB_SECONDS": "0.2",
}


def pid_of(worker_id: str) -> int:
    return int(worker_id.split(":")[1])


def stop(procs) -> None:
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    for proc in procs:
        assert proc.wait(15) == 0, log_text(proc)


def test_each_job_runs_on_a_runner_of_its_storage_within_the_cap(mariadb_procdb, tmp_path):
    db = mariadb_procdb
    root, disk_b, disk_c = (tmp_path / n for n in ("root", "b", "c"))
    for d in (root, disk_b, disk_c):
        d.mkdir()
    hosts = {"a1": None, "a2": None, "b1": "b", "b2": "b", "b3": "b", "c1": "c"}
    db.tool(
        "configure",
        config={"backup_root": str(root)},
        storages=[
            {"name": "b", "path": str(disk_b), "max_running_jobs": 1},
            {"name": "c", "path": str(disk_c)},
        ],
        hosts=[{"name": n, **({"storage": s} if s else {})} for n, s in hosts.items()],
    )
    jobs = db.tool("enqueue_many", hosts=list(hosts), each=8)["jobs"]
    runner_a = db.spawn(tmp_path / "a.log", "runner", "--loop", "--interval", "0.2",
                        "--storage", "default", **SHORT)  # fmt: skip
    runners_b = [
        db.spawn(
            tmp_path / f"b{i}.log",
            "runner",
            "--loop",
            "--interval",
            "0.2",
            "--storage",
            "b",
            **SHORT,
        )  # fmt: skip
        for i in range(2)
    ]

    def drained():
        state = db.tool("snapshot")
        left = [j for j in state["jobs"] if j["state"] in ("queued", "running")]
        return state if len(left) == 8 else None  # c1's eight wait for ever

    state = wait_for(drained, timeout=120, step=1.0, what="storages default and b to drain")
    waiting = db.pobsync("jobs", "--state", "queued")
    stop([runner_a, *runners_b])

    names = {h["id"]: h["name"] for h in state["hosts"]}
    by_storage: dict[str, list[dict]] = defaultdict(list)
    for job in state["jobs"]:
        by_storage[hosts[names[job["host_id"]]] or "default"].append(job)
    assert len(jobs) == 48
    assert {j["state"] for j in by_storage["default"] + by_storage["b"]} == {"succeeded"}
    assert {pid_of(j["worker_id"]) for j in by_storage["default"]} == {runner_a.pid}
    assert {pid_of(j["worker_id"]) for j in by_storage["b"]} <= {p.pid for p in runners_b}
    spans = sorted((when(j["started_at"]), when(j["finished_at"])) for j in by_storage["b"])
    for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
        assert start >= end, "two jobs of storage b (cap 1) ran at once"
    assert {j["state"] for j in by_storage["c"]} == {"queued"}
    assert waiting.returncode == 0, waiting.stderr
    assert waiting.stdout.count("waiting: no live runner serves storage c") == 8, waiting.stdout
    logs = "".join(log_text(p) for p in (runner_a, *runners_b))
    assert "serving storages: default" in logs and "serving storages: b" in logs
    assert "Traceback" not in logs


@pytest.mark.sshd
def test_two_runners_back_up_onto_their_own_filesystems(mariadb_procdb, sshd, tmp_path):
    """The real engine: web1 on the default storage, web2 on a separate filesystem,
    each served by its own runner process (which discovers its storage by the marker)."""
    db = mariadb_procdb
    root = tmp_path / "root"
    root.mkdir()
    with separate_mount(tmp_path / "disk2") as disk2:
        sources = {}
        for name in ("web1", "web2"):
            src = tmp_path / f"remote-{name}"
            src.mkdir()
            (src / "data.bin").write_bytes(os.urandom(64 * 1024))
            sources[name] = src
        db.tool(
            "configure",
            config=engine_config(root, sshd),
            storages=[{"name": "disk2", "path": str(disk2)}],
            hosts=[
                {"name": "web1", "sources": [str(sources["web1"])]},
                {"name": "web2", "sources": [str(sources["web2"])], "storage": "disk2"},
            ],
        )
        job1 = db.tool("enqueue", host="web1")["job"]
        job2 = db.tool("enqueue", host="web2")["job"]
        r1 = db.spawn(tmp_path / "r1.log", "runner", "--loop", "--interval", "0.3",
                      "--storage", "default")  # fmt: skip
        r2 = db.spawn(tmp_path / "r2.log", "runner", "--loop", "--interval", "0.3",
                      "--storage", "disk2")  # fmt: skip

        def done():
            jobs = {j["id"]: j for j in db.tool("snapshot")["jobs"]}
            finished = all(jobs[j]["state"] not in ("queued", "running") for j in (job1, job2))
            return jobs if finished else None

        jobs = wait_for(done, timeout=90, step=1.0, what="both backups")
        stop([r1, r2])
        assert jobs[job1]["state"] == jobs[job2]["state"] == "succeeded", (jobs, log_text(r1))
        assert pid_of(jobs[job1]["worker_id"]) == r1.pid
        assert pid_of(jobs[job2]["worker_id"]) == r2.pid
        snap1 = [p for p in (root / "web1").iterdir() if p.name[:1].isdigit()]
        snap2 = [p for p in (disk2 / "web2").iterdir() if p.name[:1].isdigit()]
        assert len(snap1) == len(snap2) == 1
        assert (snap2[0] / Path(str(sources["web2"])).relative_to("/") / "data.bin").is_file()
        assert not (root / "web2").exists() and not (disk2 / "web1").exists()
        assert os.stat(disk2).st_dev != os.stat(root).st_dev  # really another filesystem


def test_the_storage_filter_keeps_the_claim_on_the_claim_index(mariadb_procdb, tmp_path):
    """EXPLAIN on MariaDB: with hosts on two storages and a runner serving one, the
    candidates query still walks job_claim_idx in order (no filesort, no host-first plan)."""
    from tests.queue.test_processes import json_tables

    db = mariadb_procdb
    disk = tmp_path / "b"
    disk.mkdir()
    names = [f"h{i}" for i in range(200)]
    db.tool(
        "configure",
        config={"backup_root": str(tmp_path)},
        storages=[{"name": "b", "path": str(disk)}],
        hosts=[{"name": n, **({"storage": "b"} if i % 2 else {})} for i, n in enumerate(names)],
    )
    db.tool("enqueue_many", hosts=names, each=15)
    explained = db.tool("explain", storage="b")
    tables = [t for t in json_tables(explained["json"]) if t["table_name"].endswith("backupjob")]
    assert [t.get("key") for t in tables] == ["job_claim_idx"], explained["plan"]
    assert "filesort" not in json.dumps(explained["json"]), explained["json"]
