"""Outcomes of run_backup with real rsync and sshd: warning, failed, cancelled, partial."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from itertools import pairwise

import pytest

from pobsync_models.models import BackupRun, SnapshotRecord
from pobsync_runner.backup import run_backup
from tests.engine.slow_transfer import (
    make_slow_source,
    rsync_pids,
    staging_dirs,
    temp_file_started,
    wait_for,
    when,
)
from tests.support.need import free_port

pytestmark = [pytest.mark.slow, pytest.mark.sshd]
Outcome = BackupRun.Outcome


def slow(engine, kib_per_second: int = 1000) -> None:
    engine.host.rsync_options = [f"--bwlimit={kib_per_second}"]
    engine.host.save()


def big_file_in_flight(engine):
    return lambda: any(temp_file_started(d, "b-big.bin") for d in staging_dirs(engine.host_dir))


def test_it_turns_a_file_vanishing_mid_transfer_into_a_committed_warning(engine):
    make_slow_source(engine.src)
    slow(engine)
    # The file list is built before b-big.bin starts; z-late.txt goes while it is sent.
    when(big_file_in_flight(engine), (engine.src / "z-late.txt").unlink)

    run = run_backup(engine.host)

    assert run.rsync_exit_code == 24, run.log_tail
    assert run.outcome == Outcome.WARNING
    assert "vanished" in run.message and "z-late.txt" in run.message
    assert SnapshotRecord.objects.get(name=run.snapshot_name).state == "complete"
    assert (engine.host_dir / run.snapshot_name).is_dir()


def test_it_fails_readably_when_the_host_is_unreachable(engine):
    engine.host.ssh_port = free_port()  # nothing listens there
    engine.host.save()

    run = run_backup(engine.host)

    assert run.outcome == Outcome.FAILED
    # rsync reports ssh's failure as 255, or as 12 when it notices the dead pipe first
    assert run.rsync_exit_code in (12, 255)
    assert "ssh: connect to host 127.0.0.1 port" in run.message
    assert "Connection refused" in run.message
    assert "Traceback" not in run.message and "\n" not in run.message
    # nothing was transferred: no partial record or directory is left behind
    assert run.snapshot_name == "" and not SnapshotRecord.objects.exists()
    assert staging_dirs(engine.host_dir) == []


def test_it_fails_readably_on_a_wrong_host_key(engine, tmp_path):
    wrong = tmp_path / "known_hosts"
    other_key = "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
    wrong.write_text(f"[127.0.0.1]:{engine.config.ssh_port} ssh-ed25519 {other_key}\n")
    engine.config.known_hosts_path = str(wrong)
    engine.config.save()

    run = run_backup(engine.host)

    assert run.outcome == Outcome.FAILED
    assert run.message.startswith("host key verification failed: Host key for [127.0.0.1]:")
    assert "has changed" in run.message
    assert "pobsync trust-host web1" in run.message
    assert "REMOTE HOST IDENTIFICATION HAS CHANGED" in run.log_tail


def test_it_fails_on_an_unknown_host_key_instead_of_accepting_it(engine, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    engine.config.known_hosts_path = str(empty)
    engine.config.save()

    run = run_backup(engine.host)

    assert run.outcome == Outcome.FAILED
    assert run.message.startswith("host key verification failed: No ED25519 host key is known")
    assert empty.read_text() == ""


def test_it_records_a_killed_rsync_as_partial_and_the_next_run_completes_it(engine):
    make_slow_source(engine.src)
    slow(engine)

    def kill_rsync() -> None:
        for pid in rsync_pids(str(engine.host_dir)):
            os.kill(pid, signal.SIGKILL)

    def small_file_landed() -> bool:
        return any(any(d.rglob("a-small.txt")) for d in staging_dirs(engine.host_dir))

    when(lambda: small_file_landed() and big_file_in_flight(engine)(), kill_rsync)

    first = run_backup(engine.host)

    assert first.outcome == Outcome.FAILED
    assert "killed by signal 9" in first.message
    partial = SnapshotRecord.objects.get(name=first.snapshot_name)
    assert partial.state == "partial" and partial.path.endswith(".partial")
    seed_file = next(iter(os.scandir(partial.path)))  # the data pulled so far stays on disk
    small = next(p for p in staging_dirs(engine.host_dir)[0].rglob("a-small.txt"))
    small_inode = small.stat().st_ino
    assert seed_file
    engine.host.rsync_options = []
    engine.host.save()

    second = run_backup(engine.host)

    assert second.outcome == Outcome.SUCCESS, second.message
    assert second.base_snapshot_name == ""  # there was no complete snapshot to link to
    snap = engine.host_dir / second.snapshot_name
    got = snap / str(engine.src).lstrip("/")
    assert sorted(p.name for p in got.iterdir()) == ["a-small.txt", "b-big.bin", "z-late.txt"]
    assert (got / "b-big.bin").read_bytes() == (engine.src / "b-big.bin").read_bytes()
    assert (got / "a-small.txt").stat().st_ino == small_inode  # not pulled again
    assert second.files_transferred < 3
    partial.refresh_from_db()
    assert partial.state == "superseded"  # consumed as the seed, not deleted by retention
    assert staging_dirs(engine.host_dir) == []
    import json

    meta = json.loads((snap / ".pobsync-snapshot.json").read_text())
    assert meta["seed_name"] == first.snapshot_name


def test_it_cancels_on_stop_kills_rsync_and_keeps_the_partial(engine):
    make_slow_source(engine.src)
    slow(engine, 500)
    stop = threading.Event()
    when(big_file_in_flight(engine), stop.set)
    started = time.monotonic()

    run = run_backup(engine.host, stop=stop)

    assert time.monotonic() - started < 20
    assert run.outcome == Outcome.CANCELLED
    assert "partial snapshot" in run.message
    assert SnapshotRecord.objects.get(name=run.snapshot_name).state == "partial"
    assert wait_for(lambda: rsync_pids(str(engine.host_dir)) == [], timeout=5)


def test_a_full_backup_asks_progress_by_signal_and_shows_a_large_files_bytes_move(
    engine, monkeypatch
):
    """No line per file: rsync's receiver answers a signal after each file, and between
    its answers the bytes it wrote (/proc/PID/io) move the progress on, so one large file
    shows progress all through its transfer; ssh never dies of the signal."""
    import pobsync_runner.backup as backup

    monkeypatch.setattr(backup, "PROGRESS_INTERVAL_SECONDS", 0.5)
    make_slow_source(engine.src, megabytes=3)
    slow(engine, 1000)
    seen = []
    argvs = []
    real_popen = subprocess.Popen

    def spy(argv, *args, **kwargs):
        argvs.append(list(argv))
        return real_popen(argv, *args, **kwargs)

    monkeypatch.setattr(subprocess, "Popen", spy)
    run = run_backup(engine.host, progress=seen.append)

    assert run.outcome == Outcome.SUCCESS, run.message
    rsync = [a for a in argvs if a[0] == "rsync" and "--version" not in a]
    assert len(rsync) == 1 and "--info=progress2" not in rsync[0], rsync
    big = 3 * 1024 * 1024
    during = [p.bytes for p in seen if 0 < p.bytes < big]
    assert len(during) >= 3, seen  # about 3 s at 1,000 KB/s, a report every 0.5 s
    assert during == sorted(during) and len(set(during)) == len(during), seen
    assert all(a.bytes <= b.bytes and a.files <= b.files for a, b in pairwise(seen)), seen
    assert (seen[-1].bytes, seen[-1].percent) == (big + 11, 100), seen
    assert (run.progress_bytes, run.progress_percent) == (big + 11, 100)


def test_a_full_backups_receiver_answers_the_progress_signal_after_each_file(engine, monkeypatch):
    """The answers come from rsync's receiver (the client's forked child in a pull): the
    file count moves while the files arrive, not only once rsync has finished."""
    import pobsync_runner.backup as backup

    monkeypatch.setattr(backup, "PROGRESS_INTERVAL_SECONDS", 0.5)
    for i in range(200):
        (engine.src / f"f{i:03}").write_bytes(os.urandom(10_000))
    slow(engine, 1000)
    seen = []

    run = run_backup(engine.host, progress=seen.append)

    assert run.outcome == Outcome.SUCCESS, run.message
    midway = [p for p in seen if 0 < p.files < 200]
    assert len(midway) >= 2, seen  # about 2 s at 1,000 KB/s
    # rsync's percent is whole (7 files of 200 answer 0%): none final, some past 0
    assert all(p.percent < 100 and p.bytes < 2_000_000 for p in midway), seen
    assert any(p.percent > 0 for p in midway), seen
    assert all(a.files <= b.files for a, b in pairwise(seen)), seen


def test_an_incremental_keeps_progress2_so_its_percent_moves_within_a_file(engine, monkeypatch):
    """An incremental prints --info=progress2 (an unchanged one receives nothing, so
    only progress2's line per directory shows it moving): its percent moves while one
    large file is received."""
    import pobsync_runner.backup as backup

    (engine.src / "first.txt").write_text("first\n")
    assert run_backup(engine.host).outcome == Outcome.SUCCESS
    monkeypatch.setattr(backup, "PROGRESS_INTERVAL_SECONDS", 0.5)
    make_slow_source(engine.src, megabytes=2)
    slow(engine, 1000)
    seen = []

    run = run_backup(engine.host, progress=seen.append)

    assert run.outcome == Outcome.SUCCESS, run.message
    assert len(seen) >= 2
    assert any(0 < p.percent < 100 for p in seen), seen
    assert seen[-1].percent == 100
