"""A full backup writes each file at its name (--inplace, rsync.receive_in_place); the
file rsync was writing when a run is interrupted is set aside into the partial
directory (lifecycle.set_aside_unfinished), never left cut short at its name."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pobsync_models.models import BackupRun
from pobsync_runner.backup import run_backup
from pobsync_runner.lifecycle import set_aside_unfinished
from pobsync_runner.snapshots import METADATA_FILE, PARTIAL_DIR
from tests.engine.slow_transfer import (
    make_slow_source,
    rsync_pids,
    staging_dirs,
    temp_file_size,
    wait_for,
    when,
)
from tests.support.need import need_tools

Outcome = BackupRun.Outcome
BIG = 8 * 1024 * 1024


def interrupted_local_copy(src: Path, dest: Path) -> None:
    """rsync --inplace of src into dest, killed while it writes big.bin."""
    need_tools("rsync")
    argv = ["rsync", "-a", "--inplace", "--bwlimit=2000", f"{src}/", f"{dest}/"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_for(lambda: temp_file_size(dest, "big.bin") >= BIG // 4, timeout=30)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


def test_it_sets_aside_only_the_file_rsync_had_not_finished(tmp_path):
    src, dest = tmp_path / "src", tmp_path / "dest"
    (src / "a" / "b").mkdir(parents=True)
    # Finished files whose source mtime is recent (made during this test, as a live log
    # file is) or old, a file in a subdirectory, a symlink and an empty file.
    (src / "a" / "fresh.log").write_text("written just now\n")
    (src / "a" / "b" / "old.txt").write_text("old\n")
    os.utime(src / "a" / "b" / "old.txt", (1_600_000_000, 1_600_000_000))
    (src / "a" / "empty").write_bytes(b"")
    (src / "a" / "link").symlink_to("b/old.txt")
    (src / "a" / "z").mkdir()
    (src / "a" / "z" / "big.bin").write_bytes(os.urandom(BIG))  # sorted after the rest
    since = datetime.now(UTC)
    interrupted_local_copy(src, dest)
    cut = dest / "a" / "z" / "big.bin"
    assert 0 < cut.stat().st_size < BIG
    (dest / METADATA_FILE).write_text("{}")  # pobsync's own, written during the run

    assert set_aside_unfinished(dest, since) == 1

    kept = dest / PARTIAL_DIR / "big.bin"
    assert not cut.exists() and 0 < kept.stat().st_size < BIG
    assert kept.read_bytes() == (src / "a" / "z" / "big.bin").read_bytes()[: kept.stat().st_size]
    for name in ("a/fresh.log", "a/b/old.txt", "a/empty"):
        assert (dest / name).read_bytes() == (src / name).read_bytes(), name
    assert os.readlink(dest / "a" / "link") == "b/old.txt"
    assert (dest / METADATA_FILE).read_text() == "{}"
    assert set_aside_unfinished(dest, since) == 0  # nothing left to set aside


def test_a_second_part_of_the_same_name_is_dropped_not_left_at_its_name(tmp_path):
    src, dest = tmp_path / "src", tmp_path / "dest"
    (src / "z").mkdir(parents=True)
    (src / "z" / "big.bin").write_bytes(os.urandom(BIG))
    (dest / PARTIAL_DIR).mkdir(parents=True)
    (dest / PARTIAL_DIR / "big.bin").write_bytes(b"an earlier part")
    since = datetime.now(UTC)
    interrupted_local_copy(src, dest)

    assert set_aside_unfinished(dest, since) == 1

    assert not (dest / "z" / "big.bin").exists()
    assert (dest / PARTIAL_DIR / "big.bin").read_bytes() == b"an earlier part"


def test_files_older_than_the_run_are_never_touched(tmp_path):
    """Written before the run started (mtime equal to ctime, as for any file written
    and never given another time): not this run's, left where they are."""
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "before").write_text("x")
    time.sleep(0.05)
    later = datetime.fromtimestamp(time.time() + 5, UTC)  # beyond the clock slack
    assert set_aside_unfinished(tmp_path, later) == 0
    assert (tmp_path / "d" / "before").read_text() == "x"


@pytest.mark.slow
@pytest.mark.sshd
def test_a_full_backup_whose_rsync_dies_mid_file_keeps_the_part_aside_and_continues_it(engine):
    make_slow_source(engine.src, megabytes=4)
    engine.host.rsync_options = ["--bwlimit=1000"]
    engine.host.save()

    def kill_rsync() -> None:
        (staging,) = staging_dirs(engine.host_dir)
        for pid in rsync_pids(str(staging)):
            os.kill(pid, signal.SIGKILL)

    when(lambda: temp_file_size(engine.host_dir, "b-big.bin") >= 1024 * 1024, kill_rsync)
    failed = run_backup(engine.host)

    assert failed.outcome == Outcome.FAILED, failed.message
    assert "partial snapshot" in failed.message, failed.message
    (partial,) = staging_dirs(engine.host_dir)
    copied = partial / str(engine.src).lstrip("/")
    assert (copied / "a-small.txt").read_text() == "small\n"  # finished: left in place
    assert not (copied / "b-big.bin").exists()
    part = (partial / PARTIAL_DIR / "b-big.bin").read_bytes()
    assert 0 < len(part) < 4 * 1024 * 1024
    assert part == (engine.src / "b-big.bin").read_bytes()[: len(part)]

    engine.host.rsync_options = []
    engine.host.save()
    done = run_backup(engine.host)
    assert done.outcome == Outcome.SUCCESS, done.message
    snap = engine.host_dir / done.snapshot_name / str(engine.src).lstrip("/")
    for name in ("a-small.txt", "b-big.bin", "z-late.txt"):
        assert (snap / name).read_bytes() == (engine.src / name).read_bytes(), name
    assert not (engine.host_dir / done.snapshot_name / PARTIAL_DIR).exists()


def test_the_threads_helpers_see_an_in_place_file_only_while_it_is_unfinished(tmp_path):
    (tmp_path / "b-big.bin").write_bytes(b"part")
    assert temp_file_size(tmp_path, "b-big.bin") == 4
    os.utime(tmp_path / "b-big.bin", (1_600_000_000, 1_600_000_000))  # rsync's last step
    assert temp_file_size(tmp_path, "b-big.bin") == 0
