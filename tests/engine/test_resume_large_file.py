"""A large file interrupted mid-transfer (real rsync over the real sshd) is continued by
the next run, not fetched again, and the committed snapshot holds no partial-dir."""

from __future__ import annotations

import json
import os
import subprocess
import threading
from pathlib import Path

import pytest

from pobsync_models.models import BackupRun, SnapshotRecord
from pobsync_runner.backup import run_backup
from pobsync_runner.snapshots import METADATA_FILE, PARTIAL_DIR
from tests.engine.slow_transfer import staging_dirs, temp_file_size, when

pytestmark = [pytest.mark.slow, pytest.mark.sshd]
Outcome = BackupRun.Outcome
SIZE = 24 * 1024 * 1024


def test_it_continues_an_interrupted_large_file_instead_of_sending_it_again(engine):
    big = engine.src / "big.bin"
    big.write_bytes(os.urandom(SIZE))
    engine.host.rsync_options = ["--bwlimit=6000"]  # KiB/s: about 4 s for the whole file
    engine.host.save()
    stop = threading.Event()
    at_its_name: list[Path] = []

    def interrupt() -> None:
        at_its_name.extend(engine.host_dir.rglob("big.bin"))
        stop.set()

    when(lambda: temp_file_size(engine.host_dir, "big.bin") >= SIZE * 6 // 10, interrupt)

    first = run_backup(engine.host, stop=stop)

    assert first.outcome == Outcome.CANCELLED, first.message
    partial = SnapshotRecord.objects.get(name=first.snapshot_name)
    kept = Path(partial.path) / PARTIAL_DIR / "big.bin"
    assert partial.state == "partial"
    assert kept.stat().st_size >= SIZE // 2, "the received part was thrown away"
    # A full backup writes in place (the file grew at its own name), and the part was
    # set aside, never left cut short there, where a restore of the partial would take
    # it for the whole file.
    assert at_its_name, "the full backup did not write in place"
    assert not (Path(partial.path) / str(big).lstrip("/")).exists()

    engine.host.rsync_options = []
    engine.host.save()
    second = run_backup(engine.host)

    assert second.outcome == Outcome.SUCCESS, second.message
    snap = engine.host_dir / second.snapshot_name
    meta = json.loads((snap / METADATA_FILE).read_text())
    assert meta["seed_name"] == first.snapshot_name
    # Only the rest crossed the wire: well under half the file (a full send is >= SIZE).
    assert meta["bytes_received"] < SIZE // 2, meta
    copied = snap / str(big).lstrip("/")
    assert copied.read_bytes() == big.read_bytes()
    assert not (snap / PARTIAL_DIR).exists()
    assert not list(snap.rglob(PARTIAL_DIR))
    assert staging_dirs(engine.host_dir) == []


def test_it_keeps_a_remote_directory_of_that_name_below_the_root_as_data(engine):
    """The partial-dir's exclude and protect rules are anchored at the snapshot root:
    a remote directory called .pobsync-partial inside a source is ordinary data."""
    (engine.src / "file.txt").write_text("data\n")
    remote_own = engine.src / PARTIAL_DIR
    remote_own.mkdir()
    (remote_own / "file.txt").write_text("not a partial of ours\n")

    run = run_backup(engine.host)

    assert run.outcome == Outcome.SUCCESS, run.message
    copied = engine.host_dir / run.snapshot_name / str(engine.src).lstrip("/")
    # Below the snapshot root the name is ordinary data and is kept as such.
    assert (copied / PARTIAL_DIR / "file.txt").read_text() == "not a partial of ours\n"
    assert not (engine.host_dir / run.snapshot_name / PARTIAL_DIR).exists()


def test_it_protects_the_partial_dir_from_a_seeded_runs_delete_excluded(engine, tmp_path):
    """With a source of "/" the snapshot root itself is in --delete's scope; the
    exclude alone would let --delete-excluded remove the kept part (checked with a
    local rsync whose transfer root is the snapshot root, as it is for "/")."""
    from pobsync_models.specs import host_spec
    from pobsync_runner.rsync import partial_dir_args

    src, dest = tmp_path / "src", tmp_path / "dest"
    (src / "etc").mkdir(parents=True)
    (src / "etc" / "hosts").write_text("127.0.0.1 localhost\n")
    (dest / PARTIAL_DIR).mkdir(parents=True)
    (dest / PARTIAL_DIR / "big.bin").write_bytes(b"received so far")
    (dest / "stale").write_text("gone from the source\n")
    spec = host_spec(engine.host, engine.config)

    def pull(filters: list[str]) -> None:
        argv = ["rsync", "-a", "--relative", "--delete", "--delete-excluded", *filters]
        subprocess.run([*argv, f"{src}/./", f"{dest}/"], check=True)

    pull([a for a in partial_dir_args(spec, dest) if not a.startswith("--filter")])
    assert not (dest / PARTIAL_DIR).exists()  # why the protect rule is there
    (dest / PARTIAL_DIR).mkdir()
    (dest / PARTIAL_DIR / "big.bin").write_bytes(b"received so far")

    pull(partial_dir_args(spec, dest))

    assert (dest / PARTIAL_DIR / "big.bin").read_bytes() == b"received so far"
    assert not (dest / "stale").exists() and (dest / "etc" / "hosts").exists()
