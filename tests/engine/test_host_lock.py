"""Two backups of one host never write at once: the second fails at once or waits."""

from __future__ import annotations

import threading
import time

import pytest

from pobsync_models.models import BackupRun
from pobsync_runner.backup import HostBusy, run_backup
from pobsync_runner.lock import HostLock


def test_it_fails_a_second_lock_at_once_naming_the_holder(tmp_path):
    with HostLock(tmp_path / "web1"):
        started = time.monotonic()
        with pytest.raises(HostBusy, match=r"host web1 is busy \(backup by .*:\d+ since"):
            HostLock(tmp_path / "web1").acquire()
        assert time.monotonic() - started < 1
    with HostLock(tmp_path / "web1"):  # released on exit
        pass


def test_it_waits_for_the_lock_when_asked(tmp_path):
    holder = HostLock(tmp_path / "web1")
    holder.acquire()
    threading.Timer(0.5, holder.release).start()
    started = time.monotonic()
    with HostLock(tmp_path / "web1", wait=True, poll_seconds=0.05):
        assert time.monotonic() - started >= 0.4


def test_it_stops_waiting_when_the_stop_event_is_set(tmp_path):
    stop = threading.Event()
    with HostLock(tmp_path / "web1"):
        threading.Timer(0.2, stop.set).start()
        with pytest.raises(HostBusy, match="stopped while waiting"):
            HostLock(tmp_path / "web1", wait=True, stop=stop, poll_seconds=0.05).acquire()


@pytest.mark.slow
@pytest.mark.sshd
def test_it_refuses_a_concurrent_backup_of_the_same_host(engine):
    (engine.src / "f").write_text("x")
    with HostLock(engine.host_dir, purpose="backup"):
        with pytest.raises(HostBusy, match="use --wait"):
            run_backup(engine.host)
    assert not BackupRun.objects.exists()


@pytest.mark.slow
@pytest.mark.sshd
def test_it_runs_a_waiting_backup_once_the_other_finishes(engine):
    (engine.src / "f").write_text("x")
    other = HostLock(engine.host_dir)
    other.acquire()
    threading.Timer(1.0, other.release).start()
    started = time.monotonic()
    run = run_backup(engine.host, wait=True)
    assert time.monotonic() - started >= 0.9
    assert run.outcome == BackupRun.Outcome.SUCCESS


@pytest.mark.slow
@pytest.mark.sshd
def test_it_marks_runs_left_running_by_a_dead_process_as_failed(engine):
    from django.utils import timezone

    (engine.src / "f").write_text("x")
    stale = BackupRun.objects.create(host=engine.host, started_at=timezone.now())
    run_backup(engine.host)
    stale.refresh_from_db()
    assert stale.outcome == BackupRun.Outcome.FAILED
    assert stale.message.startswith("interrupted")


def test_it_reports_an_unwritable_host_directory_as_one_line(tmp_path):
    from pobsync_runner.errors import BackupError

    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(BackupError, match=r"^cannot lock .*/web1/\.lock: Not a directory$"):
        HostLock(blocker / "web1").acquire()
