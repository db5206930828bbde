"""The mount guard and the space guard, over the real sshd and rsync, on real mounts."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from pobsync_models.models import BackupJob, BackupRun, Event, SnapshotRecord, Storage
from pobsync_models.queue import enqueue
from pobsync_models.storages import MARKER_FILE, write_marker
from pobsync_runner.backup import run_backup
from pobsync_runner.errors import StorageShortError, StorageUnavailableError
from tests.support.smallfs import fill, small_fs, use_inodes

pytestmark = [pytest.mark.slow, pytest.mark.sshd]


def events(kind: str) -> list[Event]:
    return list(Event.objects.filter(kind=kind).order_by("id"))


def tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_it_writes_nothing_to_a_storage_without_its_marker(engine):
    (engine.src / "a.txt").write_text("a\n")
    (engine.root / MARKER_FILE).unlink()  # what an unmounted disk looks like
    for _attempt in range(2):
        with pytest.raises(StorageUnavailableError) as caught:
            run_backup(engine.host)
        assert str(engine.root) in str(caught.value)
        assert "no marker file" in str(caught.value)
    assert tree(engine.root) == []  # not even the host directory or its lock
    assert not BackupRun.objects.exists()
    (first,) = events(Event.Kind.STORAGE_UNMOUNTED)  # one occurrence, one event
    assert first.subject == "default" and str(engine.root) in first.message

    call_command("storage", "mark", "default")  # the disk is back
    assert run_backup(engine.host).outcome == BackupRun.Outcome.SUCCESS
    assert Storage.objects.get(is_default=True).unmounted_since is None
    (engine.root / MARKER_FILE).unlink()
    with pytest.raises(StorageUnavailableError):
        run_backup(engine.host)
    assert len(events(Event.Kind.STORAGE_UNMOUNTED)) == 2  # a new occurrence


def test_it_refuses_a_disk_that_belongs_to_another_storage(engine):
    other = Storage.objects.create(name="other", path=str(engine.root))
    other.path = str(engine.root)
    write_marker(other)  # the wrong disk is mounted here
    with pytest.raises(StorageUnavailableError, match="belongs to storage 'other'"):
        run_backup(engine.host)
    assert tree(engine.root) == [MARKER_FILE]


def test_it_writes_nothing_under_an_unmounted_mount_point(engine, tmp_path):
    disk = tmp_path / "disk"
    with small_fs(disk, size="16m"):
        call_command("storage", "add", "disk", "--path", str(disk))
        call_command("configure_host", engine.host.name, "--storage", "disk")
        (engine.src / "a.txt").write_text("a\n")
        engine.host.refresh_from_db()
        assert run_backup(engine.host).outcome == BackupRun.Outcome.SUCCESS
        assert (disk / engine.host.name).is_dir()
    # unmounted: the empty mount point is what the runner sees now
    assert os.listdir(disk) == []
    with pytest.raises(StorageUnavailableError, match=f"no marker file {disk}/"):
        run_backup(engine.host)
    assert os.listdir(disk) == []


@pytest.fixture
def small_storage(engine, tmp_path):
    """The host's storage on an 8 MiB tmpfs with 300 inodes."""
    disk = tmp_path / "small"
    with small_fs(disk, size="8m", inodes=300):
        call_command("storage", "add", "small", "--path", str(disk))
        call_command("configure_host", engine.host.name, "--storage", "small")
        engine.host.refresh_from_db()
        (engine.src / "a.txt").write_text("a\n")
        yield disk


def test_a_manual_backup_below_the_minimum_refuses_without_force(engine, small_storage, capsys):
    call_command("storage", "set", "small", "--min-free-space", "2M")
    fill(small_storage, leave_bytes=1536 * 1024)
    before = tree(small_storage)
    with pytest.raises(CommandError) as caught:
        call_command("run_pobsync_backup", engine.host.name)
    message = str(caught.value)
    assert "storage small has 1." in message and "the minimum is 2.0 MiB (2M)" in message
    assert message.endswith("run with --force to back up anyway")
    assert tree(small_storage) == before  # nothing written
    (event,) = events(Event.Kind.STORAGE_FULL)
    assert event.subject == "small"
    call_command("run_pobsync_backup", engine.host.name, "--force")
    assert BackupRun.objects.get().outcome == BackupRun.Outcome.SUCCESS


def test_inode_exhaustion_is_caught_the_same_way(engine, small_storage):
    call_command("storage", "set", "small", "--min-free-inodes", "50")
    use_inodes(small_storage, leave=40)
    with pytest.raises(StorageShortError, match=r"storage small has \d+ free inodes; the min"):
        run_backup(engine.host)
    assert not (small_storage / engine.host.name).exists()


# The runner runs in this process and manages its own connection (close_old_connections):
# outside a test transaction, as in production.
@pytest.mark.django_db(transaction=True)
def test_a_scheduled_job_waits_with_the_reason_instead_of_failing(engine, small_storage):
    call_command("storage", "set", "small", "--min-free-space", "2M")
    fill(small_storage, leave_bytes=1024 * 1024)
    job = enqueue(engine.host, trigger=BackupJob.Trigger.SCHEDULE)
    call_command("runner", "--once", "--storage", "small")
    job.refresh_from_db()
    assert job.state == BackupJob.State.QUEUED
    assert job.attempts == 0  # waiting is not a failed attempt
    assert job.error.startswith("waiting: storage small has 1")
    assert job.run_after > job.created_at  # retried later
    assert not BackupRun.objects.exists()


def test_enospc_mid_backup_fails_clearly_and_keeps_the_partial(engine, small_storage):
    call_command("storage", "set", "small", "--min-free-space", "0", "--min-free-inodes", "0")
    (engine.src / "big.bin").write_bytes(os.urandom(12 * 1024 * 1024))  # > the 8 MiB disk
    run = run_backup(engine.host)
    assert run.outcome == BackupRun.Outcome.FAILED
    assert run.message.startswith("storage small ran out of space during the backup")
    assert "partial snapshot" in run.message and "kept" in run.message
    partial = SnapshotRecord.objects.get(state=SnapshotRecord.State.PARTIAL)
    assert Path(partial.path).is_dir() and partial.path.endswith(".partial")
    assert events(Event.Kind.STORAGE_FULL)
    # after freeing space the next run continues from the partial
    (engine.src / "big.bin").write_bytes(os.urandom(1024 * 1024))
    subprocess.run(["sync"], check=False)
    again = run_backup(engine.host)
    assert again.outcome == BackupRun.Outcome.SUCCESS, again.message
