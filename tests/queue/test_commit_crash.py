"""A runner killed with SIGKILL after the snapshot's commit point but before it wrote the
run's outcome and finished the job (issue 10, defect 1): the reaper must record the run
with its real outcome and never run the job again (one job, one snapshot)."""

from __future__ import annotations

import signal
import time

import pytest

from tests.queue.procs import engine_config, exit_code, log_text, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.sshd]


@pytest.fixture
def site(procdb, sshd, tmp_path):
    root = tmp_path / "backups"
    root.mkdir()
    src = tmp_path / "remote" / "data"
    src.mkdir(parents=True)
    (src / "hello.txt").write_text("hello\n")
    procdb.tool(
        "configure",
        config=engine_config(root, sshd),
        hosts=[{"name": "web1", "sources": [str(src)]}],
    )
    return root


def test_it_records_a_run_killed_after_the_commit_point_as_done(procdb, site, tmp_path):
    root = site
    job = procdb.tool("enqueue", host="web1")["job"]
    marker = tmp_path / "committed"
    runner = procdb.spawn(
        tmp_path / "runner-a.log",
        "runner",
        "--loop",
        "--interval",
        "0.5",
        POBSYNC_TEST_PAUSE_AFTER_COMMIT=str(marker),
    )
    wait_for(marker.exists, timeout=60, step=0.2, what="the runner to reach the commit point")
    runner.send_signal(signal.SIGKILL)
    runner.wait(10)

    # The snapshot is committed, the job and its run are still "running".
    state = procdb.tool("snapshot")
    assert [s["state"] for s in state["snapshots"]] == ["complete"]
    assert [r["outcome"] for r in state["runs"]] == ["running"]
    assert state["jobs"][0]["state"] == "running"

    runner_b = procdb.spawn(tmp_path / "runner-b.log", "runner", "--loop", "--interval", "0.5")
    done = wait_for(
        lambda: (j := procdb.tool("snapshot")["jobs"][0])["state"] != "running" and j,
        timeout=60,
        what="the reaper to take the expired lease back",
    )
    assert done["id"] == job and done["state"] == "succeeded", done
    assert done["attempts"] == 1 and "after the snapshot was committed" in done["error"]
    time.sleep(3)  # a runner that ran the job again would have claimed it by now
    state = procdb.tool("snapshot")
    assert [j["state"] for j in state["jobs"]] == ["succeeded"]
    assert [s["state"] for s in state["snapshots"]] == ["complete"]
    assert len([p for p in (root / "web1").iterdir() if p.name[:1].isdigit()]) == 1
    (run,) = state["runs"]
    assert run["outcome"] == "success" and run["finished_at"]
    assert "was committed" in run["message"], run["message"]
    assert all(h["running_job_id"] is None for h in state["hosts"])
    assert "1 recovered" in log_text(runner_b)
    runner_b.send_signal(signal.SIGTERM)
    assert exit_code(runner_b, 15) == 0, log_text(runner_b)
