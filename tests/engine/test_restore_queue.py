"""Restores as queue jobs, with real processes: never beside a backup of the same host,
cancellable, --no-wait, and the snapshot they read is kept by retention --apply."""

from __future__ import annotations

import re
import signal
import time

import pytest

from tests.engine.slow_transfer import make_slow_source, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.sshd]


def job_id(out: str) -> int:
    m = re.search(r"restore job (\d+) queued", out)
    assert m, out
    return int(m.group(1))


def test_a_restore_and_a_backup_of_one_host_never_overlap(bare_site, tmp_path):
    site = bare_site
    make_slow_source(site.src, megabytes=2)
    site("configure-host", "web1", "--rsync-option=--hard-links", "--rsync-option=--bwlimit=1M")
    site("backup", "web1")
    site.start_runner()
    site.start_runner()  # two runners: only the host mutex keeps the jobs apart
    site("enqueue", "web1")
    queued = site("restore", "web1", str(site.src), "--to-dir", str(tmp_path / "r"), "--no-wait")
    restore = job_id(queued.stdout)
    assert "cancel with `pobsync cancel" in queued.stdout
    assert wait_for(
        lambda: (
            site.sql("select count(*) from pobsync_models_backupjob where state='succeeded'")
            == [(2,)]
        ),
        timeout=90,
    ), site.sql("select id, kind, state, error from pobsync_models_backupjob")
    (b_start, b_end), *_ = site.sql(
        "select started_at, finished_at from pobsync_models_backuprun order by id desc limit 1"
    )
    ((r_start, r_end),) = site.sql(
        "select started_at, finished_at from pobsync_models_restorerequest"
    )
    assert b_end <= r_start or r_end <= b_start, (b_start, b_end, r_start, r_end)
    jobs = site("jobs", "--kind", "restore").stdout.splitlines()
    assert jobs[1].split()[:4] == [str(restore), "restore", "web1", "succeeded"]


def test_a_snapshot_read_by_a_restore_survives_retention_apply(bare_site, tmp_path):
    site = bare_site
    (site.src / "later.txt").write_text("second snapshot\n")
    site("backup", "web1")
    old, new = [
        n for (n,) in site.sql("select name from pobsync_models_snapshotrecord order by name")
    ]
    site("configure-host", "web1", "--keep-last", "1", "--keep-daily", "0",
         "--keep-weekly", "0", "--keep-monthly", "0")  # fmt: skip
    queued = site("restore", "web1", f"{site.src}/etc", "--snapshot", old, "--to-dir",
                  str(tmp_path / "r"), "--no-wait")  # fmt: skip
    restore = job_id(queued.stdout)
    plan = site("retention", "web1").stdout
    assert f"read by queued restore job {restore}" in plan
    site("retention", "web1", "--apply", "--yes")
    states = dict(site.sql("select name, state from pobsync_models_snapshotrecord"))
    assert states == {old: "complete", new: "complete"}
    site.start_runner()
    assert wait_for(
        lambda: (
            site.sql(f"select state from pobsync_models_backupjob where id={restore:d}")  # noqa: S608
            == [("succeeded",)]
        ),
        timeout=60,
    )
    assert (tmp_path / "r" / str(site.src).lstrip("/") / "etc" / "passwd").exists()
    site("retention", "web1", "--apply", "--yes")  # no restore needs it any more
    states = dict(site.sql("select name, state from pobsync_models_snapshotrecord"))
    assert states == {old: "pruned", new: "complete"}


def test_it_cancels_a_queued_restore_and_ctrl_c_cancels_the_one_it_waits_for(bare_site, tmp_path):
    site = bare_site
    queued = site("restore", "web1", str(site.src), "--to-dir", str(tmp_path / "a"), "--no-wait")
    first = job_id(queued.stdout)
    assert f"job {first} cancelled" in site("cancel", str(first)).stdout
    waiting = site.popen("restore", "web1", str(site.src), "--to-dir", str(tmp_path / "b"))
    assert wait_for(
        lambda: site.sql("select count(*) from pobsync_models_backupjob") == [(2,)], timeout=20
    )
    time.sleep(0.5)
    waiting.send_signal(signal.SIGINT)
    out, err = waiting.communicate(timeout=30)
    assert waiting.returncode == 1 and "cancelled" in err and "Traceback" not in err
    states = site.sql("select state from pobsync_models_backupjob order by id")
    assert states == [("cancelled",), ("cancelled",)]
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
