"""run_backup against the real sshd: full then incremental, what a snapshot preserves."""

from __future__ import annotations

import json
import os
import stat
import time

import pytest

from pobsync_models.models import BackupRun, SnapshotRecord
from pobsync_runner.backup import BackupError, run_backup

pytestmark = [pytest.mark.slow, pytest.mark.sshd]

ODD_NAMES = ["with space.txt", "ünïcødé-ß.txt", "-leading-dash", "--double-dash", "new\nline"]


def landed(engine, snapshot_dir):
    """Where the source tree lands inside a snapshot (sources keep their full path)."""
    return snapshot_dir / str(engine.src).lstrip("/")


def test_it_makes_a_full_then_an_incremental_snapshot_sharing_inodes(engine):
    (engine.src / "unchanged.txt").write_text("same\n")
    (engine.src / "changed.txt").write_text("v1\n")
    first = run_backup(engine.host)
    assert first.outcome == BackupRun.Outcome.SUCCESS, first.message
    assert first.base_snapshot_name == ""
    (engine.src / "changed.txt").write_text("v2 longer\n")

    second = run_backup(engine.host)

    assert second.outcome == BackupRun.Outcome.SUCCESS, second.message
    assert second.base_snapshot_name == first.snapshot_name
    one, two = engine.snapshot_dirs()
    assert (one.name, two.name) == (first.snapshot_name, second.snapshot_name)
    a, b = landed(engine, one), landed(engine, two)
    assert (a / "unchanged.txt").stat().st_ino == (b / "unchanged.txt").stat().st_ino
    assert (a / "changed.txt").stat().st_ino != (b / "changed.txt").stat().st_ino
    assert (b / "changed.txt").read_text() == "v2 longer\n"
    assert (a / "changed.txt").read_text() == "v1\n"
    assert (second.files_total, second.files_transferred) == (2, 1)
    record = SnapshotRecord.objects.get(name=second.snapshot_name)
    assert record.state == SnapshotRecord.State.COMPLETE
    assert record.base_id == first.snapshot_id
    assert record.path == str(two)
    assert second.snapshot_id == record.pk


def test_it_writes_the_metadata_file_and_leaves_no_staging_directory(engine):
    (engine.src / "f").write_bytes(b"x" * 1000)
    run = run_backup(engine.host)
    meta = json.loads((engine.host_dir / run.snapshot_name / ".pobsync-snapshot.json").read_text())
    assert meta["name"] == run.snapshot_name and meta["host"] == "web1"
    assert meta["state"] == "complete" and meta["rsync_exit_code"] == 0
    assert meta["files_total"] == 1 and meta["bytes_total"] == 1000
    assert meta["started_at"] and meta["finished_at"] and meta["pobsync_version"]
    assert meta["sources"] == [str(engine.src)]
    assert not any(p.name.endswith(".partial") for p in engine.host_dir.iterdir())
    run.refresh_from_db()
    assert run.progress_percent == 100.0 and run.progress_updated_at is not None


def test_it_preserves_content_modes_symlinks_and_odd_names(engine):
    for i, name in enumerate(ODD_NAMES):
        (engine.src / name).write_text(f"content {i}\n")
    script = engine.src / "run.sh"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o750)
    secret = engine.src / "secret"
    secret.write_text("s")
    secret.chmod(0o600)
    (engine.src / "sub dir").mkdir()
    (engine.src / "sub dir" / "deep.bin").write_bytes(bytes(range(256)) * 10)
    os.symlink("sub dir/deep.bin", engine.src / "link")
    os.symlink("/nonexistent/target", engine.src / "dangling")

    run = run_backup(engine.host)

    assert run.outcome == BackupRun.Outcome.SUCCESS, run.message + run.log_tail
    got = landed(engine, engine.host_dir / run.snapshot_name)
    for i, name in enumerate(ODD_NAMES):
        assert (got / name).read_text() == f"content {i}\n", name
    assert stat.S_IMODE((got / "run.sh").stat().st_mode) == 0o750
    assert stat.S_IMODE((got / "secret").stat().st_mode) == 0o600
    assert (got / "sub dir" / "deep.bin").read_bytes() == bytes(range(256)) * 10
    assert os.readlink(got / "link") == "sub dir/deep.bin"
    assert os.readlink(got / "dangling") == "/nonexistent/target"
    assert (got / "run.sh").stat().st_mtime == script.stat().st_mtime


def test_it_keeps_a_symlinks_mtime_to_the_nanosecond(engine):
    """rsync compares whole seconds by default and sets a symlink's time only when that
    comparison differs, so a link made (or matched in the previous snapshot) within the
    source time's second kept the wrong nanoseconds; the restore tests then flaked."""
    link = engine.src / "link"
    os.symlink("does-not-exist", link)
    # A full backup: the source's second is the one the backup creates the link in
    # (the backup starts just after the second begins and takes well under a second).
    time.sleep(1 - time.time() % 1)
    now = time.time_ns()
    os.utime(link, ns=(now, now - now % 10**9 + 999_999_999), follow_symlinks=False)
    first = run_backup(engine.host)
    assert first.outcome == BackupRun.Outcome.SUCCESS, first.message + first.log_tail
    got = landed(engine, engine.host_dir / first.snapshot_name) / "link"
    assert got.lstat().st_mtime_ns == link.lstat().st_mtime_ns
    # An incremental one: the previous snapshot's link differs from the source only in
    # nanoseconds, so it must not be reused (--link-dest) with the old time.
    os.utime(link, ns=(1_600_000_000_123_456_789,) * 2, follow_symlinks=False)
    second = run_backup(engine.host)
    os.utime(link, ns=(1_600_000_000_987_654_321,) * 2, follow_symlinks=False)
    third = run_backup(engine.host)
    assert third.outcome == BackupRun.Outcome.SUCCESS, third.message + third.log_tail
    assert third.base_snapshot_name == second.snapshot_name
    got = landed(engine, engine.host_dir / third.snapshot_name) / "link"
    assert got.lstat().st_mtime_ns == 1_600_000_000_987_654_321


def test_it_keeps_each_source_at_its_own_path_and_honours_excludes(engine):
    other = engine.src.parent / "other"
    other.mkdir()
    (other / "o.txt").write_text("o")
    (engine.src / "keep.txt").write_text("k")
    (engine.src / "skip.tmp").write_text("t")
    engine.host.sources = [str(engine.src), str(other)]
    engine.host.excludes = ["*.tmp"]
    engine.host.save()

    run = run_backup(engine.host)

    snap = engine.host_dir / run.snapshot_name
    assert (landed(engine, snap) / "keep.txt").exists()
    assert not (landed(engine, snap) / "skip.tmp").exists()
    assert (snap / str(other).lstrip("/") / "o.txt").read_text() == "o"


def test_it_never_takes_the_metadata_file_from_the_remote(engine):
    engine.host.sources = [str(engine.src)]
    engine.host.save()
    (engine.src / ".pobsync-snapshot.json").write_text("not ours")  # not at the root: kept
    run = run_backup(engine.host)
    snap = engine.host_dir / run.snapshot_name
    assert (landed(engine, snap) / ".pobsync-snapshot.json").read_text() == "not ours"
    assert json.loads((snap / ".pobsync-snapshot.json").read_text())["name"] == run.snapshot_name


def test_it_refuses_a_host_without_sources_before_recording_anything(engine):
    engine.host.sources = []
    engine.host.save()
    with pytest.raises(BackupError, match="no sources"):
        run_backup(engine.host)
    assert not BackupRun.objects.exists()


def test_it_warns_when_a_previously_non_empty_source_comes_back_empty(engine):
    (engine.src / "f").write_text("data")
    assert run_backup(engine.host).outcome == BackupRun.Outcome.SUCCESS
    (engine.src / "f").unlink()

    run = run_backup(engine.host)

    assert run.outcome == BackupRun.Outcome.WARNING
    assert "no files" in run.message and "is the source mounted" in run.message
    assert SnapshotRecord.objects.get(name=run.snapshot_name).state == "complete"
