"""A backup over the real sshd writes the snapshot's manifest from rsync's own checksums."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess

import pytest
from django.core.management import call_command

from pobsync_models.models import BackupRun
from pobsync_runner.backup import run_backup
from pobsync_runner.manifest import MANIFEST_FILE, UNKNOWN, open_manifest

pytestmark = [pytest.mark.slow, pytest.mark.sshd]


def entries(snapshot_dir):
    reader = open_manifest(snapshot_dir)
    try:
        found = {e.path: e for e in reader}
    finally:
        reader.close()
    assert reader.complete and not reader.problems
    return reader.algorithm, found


def xxh128sum(path) -> str:
    if shutil.which("xxh128sum") is None:
        pytest.fail("xxh128sum missing: apt-get install xxhash (scripts/test.sh installs it)")
    out = subprocess.run(["xxh128sum", "--", str(path)], capture_output=True, check=True)
    return out.stdout.split()[0].decode()


def rel(engine, name: str) -> bytes:
    return os.fsencode(str(engine.src).lstrip("/")) + b"/" + os.fsencode(name)


def test_it_records_xxh128_checksums_equal_to_xxh128sum_and_carries_them_on(engine):
    names = ["a.bin", "empty", "sub/b.bin", "odd\tname\nwith\\escapes", "ünï.txt"]
    for i, name in enumerate(names):
        path = engine.src / name
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(os.urandom(70_000 * i))
    os.symlink("a.bin", engine.src / "link")
    first = run_backup(engine.host)
    assert first.outcome == BackupRun.Outcome.SUCCESS, first.message
    one = engine.host_dir / first.snapshot_name
    algorithm, found = entries(one)
    assert algorithm == "xxh128"
    assert sorted(found) == sorted(rel(engine, n) for n in names)  # regular files only
    assert list(found) == sorted(found)
    for name in names:
        entry = found[rel(engine, name)]
        on_disk = one / os.fsdecode(rel(engine, name))
        assert entry.checksum == xxh128sum(on_disk)
        assert (entry.size, entry.inode) == (on_disk.stat().st_size, on_disk.stat().st_ino)
        assert entry.mtime_ns == on_disk.stat().st_mtime_ns

    (engine.src / "a.bin").write_bytes(b"changed")
    second = run_backup(engine.host)
    two = engine.host_dir / second.snapshot_name
    _, again = entries(two)
    assert again[rel(engine, "a.bin")].checksum == xxh128sum(
        two / os.fsdecode(rel(engine, "a.bin"))
    )
    for name in names[1:]:  # linked, not transferred: the base's checksum, same inode
        assert again[rel(engine, name)] == found[rel(engine, name)]
    assert not list(engine.host_dir.glob(".*.transfer.log"))


def test_it_records_md5_when_that_is_what_rsync_negotiates(engine):
    engine.host.rsync_options = ["--checksum-choice=md5"]
    engine.host.save()
    (engine.src / "f").write_bytes(os.urandom(123_456))
    run = run_backup(engine.host)
    assert run.outcome == BackupRun.Outcome.SUCCESS, run.message
    algorithm, found = entries(engine.host_dir / run.snapshot_name)
    assert algorithm == "md5"
    assert (
        found[rel(engine, "f")].checksum
        == hashlib.md5(  # noqa: S324
            (engine.src / "f").read_bytes()
        ).hexdigest()
    )


def test_a_manifest_the_base_lacks_leaves_linked_files_unknown(engine):
    (engine.src / "f").write_bytes(b"one")
    first = run_backup(engine.host)
    (engine.host_dir / first.snapshot_name / MANIFEST_FILE).unlink()
    (engine.src / "g").write_bytes(b"two")
    second = run_backup(engine.host)
    _, found = entries(engine.host_dir / second.snapshot_name)
    assert found[rel(engine, "f")].checksum == UNKNOWN
    assert found[rel(engine, "g")].checksum != UNKNOWN

    out = io.StringIO()
    call_command("verify", "web1", "--snapshot", second.snapshot_name, stdout=out)

    assert f"{second.snapshot_name}: manifest completed: 1 checksums added" in out.getvalue()
    snap = engine.host_dir / second.snapshot_name
    _, completed = entries(snap)
    assert completed[rel(engine, "f")].checksum == xxh128sum(snap / os.fsdecode(rel(engine, "f")))
    assert completed[rel(engine, "g")] == found[rel(engine, "g")]


def _no_walk(monkeypatch):
    """Make the usual build fail loudly: only a copied manifest can then appear."""
    import pobsync_runner.manifest_build as build

    def refuse(*_a, **_k):
        raise AssertionError("the manifest was built by a walk")

    monkeypatch.setattr(build, "build_manifest", refuse)


def _count_walks(monkeypatch) -> list[int]:
    """A list that grows by one each time the manifest is built by a walk."""
    import pobsync_runner.manifest_build as build

    walks: list[int] = []
    real = build.build_manifest
    monkeypatch.setattr(build, "build_manifest", lambda *a, **k: walks.append(1) or real(*a, **k))
    return walks


def _two_files(engine) -> None:
    (engine.src / "sub").mkdir()
    (engine.src / "sub" / "a.bin").write_bytes(os.urandom(5000))
    (engine.src / "big.bin").write_bytes(os.urandom(300_000))


def test_an_unchanged_incremental_copies_the_base_manifest_without_a_walk(engine, monkeypatch):
    _two_files(engine)
    first = run_backup(engine.host)
    _no_walk(monkeypatch)
    second = run_backup(engine.host)
    assert second.outcome == BackupRun.Outcome.SUCCESS, second.message
    one, two = (engine.host_dir / r.snapshot_name for r in (first, second))
    assert (two / MANIFEST_FILE).read_bytes() == (one / MANIFEST_FILE).read_bytes()
    _, found = entries(two)
    for path, entry in found.items():  # every line is true of the new snapshot
        st = (two / os.fsdecode(path)).stat()
        assert (entry.inode, entry.size, entry.mtime_ns) == (st.st_ino, st.st_size, st.st_mtime_ns)
    out = io.StringIO()
    call_command("verify", "web1", "--snapshot", second.snapshot_name, stdout=out)
    assert "verify web1: ok" in out.getvalue(), out.getvalue()


def _exact(two) -> dict:
    """The manifest lists exactly the snapshot's files, each as it is on disk."""
    _, found = entries(two)
    on_disk = {
        os.fsencode(os.path.relpath(os.path.join(d, f), two))
        for d, _, files in os.walk(two)
        for f in files
        if not f.startswith(".pobsync-")
    }
    assert set(found) == on_disk
    for path, entry in found.items():
        st = (two / os.fsdecode(path)).stat()
        assert (entry.inode, entry.size, entry.mtime_ns) == (st.st_ino, st.st_size, st.st_mtime_ns)
    return found


@pytest.mark.parametrize("change", ["changed", "added", "chmod"])
def test_a_few_logged_files_patch_the_base_manifest_without_a_walk(engine, monkeypatch, change):
    """rsync logs every file it copies: the base's lines stand for the rest (hard links),
    the logged ones get their own (a new inode), and no walk is needed."""
    _two_files(engine)
    run_backup(engine.host)
    if change == "changed":
        (engine.src / "sub" / "a.bin").write_bytes(os.urandom(6000))
    elif change == "added":
        (engine.src / "0-first.bin").write_bytes(os.urandom(10))  # before every base path
        (engine.src / "sub" / "b.bin").write_bytes(os.urandom(20))  # between two
        (engine.src / "zz-last.bin").write_bytes(os.urandom(30))  # after every one
    else:
        (engine.src / "big.bin").chmod(0o600)  # copied locally: a new inode, same bytes
    _no_walk(monkeypatch)
    second = run_backup(engine.host)
    assert second.outcome == BackupRun.Outcome.SUCCESS, second.message
    two = engine.host_dir / second.snapshot_name
    found = _exact(two)
    for path, entry in found.items():
        if entry.checksum != UNKNOWN:
            assert entry.checksum == xxh128sum(two / os.fsdecode(path))
    if change != "chmod":
        assert all(e.checksum != UNKNOWN for e in found.values())
    out = io.StringIO()
    call_command("verify", "web1", "--snapshot", second.snapshot_name, stdout=out)
    assert "verify web1: ok" in out.getvalue(), out.getvalue()


@pytest.mark.parametrize("change", ["deleted", "max-size", "renamed", "added and deleted"])
def test_anything_rsync_cannot_vouch_for_is_walked(engine, monkeypatch, change):
    """A file gone from the source (rsync logs nothing), a file left out by --max-size
    (still counted by --stats), a renamed file and a file added beside one deleted (as
    many files as before): walked, and the manifest lists exactly the snapshot's files."""

    _two_files(engine)
    run_backup(engine.host)
    if change == "deleted":
        (engine.src / "sub" / "a.bin").unlink()
    elif change == "max-size":
        engine.host.rsync_options = ["--max-size=100K"]
        engine.host.save()
    elif change == "renamed":
        (engine.src / "sub" / "a.bin").rename(engine.src / "sub" / "z.bin")
    else:
        (engine.src / "sub" / "a.bin").unlink()
        (engine.src / "c.bin").write_bytes(os.urandom(10))
    walks = _count_walks(monkeypatch)
    second = run_backup(engine.host)
    assert second.outcome == BackupRun.Outcome.SUCCESS, second.message
    assert walks == [1]
    _exact(engine.host_dir / second.snapshot_name)


def test_a_full_backups_manifest_comes_from_rsyncs_log_without_a_walk(engine, monkeypatch):
    _two_files(engine)
    (engine.src / "sub" / "empty").write_bytes(b"")
    _no_walk(monkeypatch)
    first = run_backup(engine.host)
    assert first.outcome == BackupRun.Outcome.SUCCESS, first.message
    one = engine.host_dir / first.snapshot_name
    found = _exact(one)
    assert len(found) == 3
    for path, entry in found.items():
        assert entry.checksum == xxh128sum(one / os.fsdecode(path))


def test_an_incremental_with_more_logged_files_than_it_holds_is_walked(engine, monkeypatch):
    """Memory stays bounded: an incremental's logged files are held (carry_over) only up
    to CARRY_MAX_CHANGED; a full backup's are followed on disk, at any number."""
    import pobsync_runner.manifest_build as build

    _two_files(engine)
    monkeypatch.setattr(build, "CARRY_MAX_CHANGED", 1)
    walks = _count_walks(monkeypatch)
    first = run_backup(engine.host)
    assert first.outcome == BackupRun.Outcome.SUCCESS, first.message
    assert walks == []  # the full backup's two files: followed, not held
    _exact(engine.host_dir / first.snapshot_name)
    for name in ("sub/a.bin", "big.bin"):
        (engine.src / name).write_bytes(os.urandom(4000))
    second = run_backup(engine.host)
    assert second.outcome == BackupRun.Outcome.SUCCESS, second.message
    assert walks == [1]
    _exact(engine.host_dir / second.snapshot_name)
