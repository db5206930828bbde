"""`pobsync verify` over snapshots taken through the real sshd: damage is named with
every snapshot that shares the inode, and the next backup copies a fresh file."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
from contextlib import contextmanager

import pytest
from django.core.management import CommandError, call_command

from pobsync_models.models import BackupRun, Event, SnapshotRecord, VerifyRun
from pobsync_runner.backup import run_backup
from pobsync_runner.manifest import MANIFEST_FILE, UNKNOWN, open_manifest
from pobsync_runner.verify import corrupt_warning

pytestmark = [pytest.mark.slow, pytest.mark.sshd]
Integrity = SnapshotRecord.Integrity


def verify(*args: str) -> tuple[bool, str]:
    out = io.StringIO()
    try:
        call_command("verify", "web1", *args, stdout=out)
    except CommandError as exc:
        return False, out.getvalue() + f"ERROR {exc}"
    return True, out.getvalue()


def backups(engine, n: int) -> list[BackupRun]:
    runs = []
    for _ in range(n):
        run = run_backup(engine.host)
        assert run.outcome == BackupRun.Outcome.SUCCESS, run.message
        runs.append(run)
    return runs


def in_snapshot(engine, run, name: str):
    return engine.host_dir / run.snapshot_name / str(engine.src).lstrip("/") / name


def flip_byte(path, offset: int = 10) -> None:
    """Damage one byte in place, keeping size and mtime (what bit rot looks like)."""
    st = path.stat()
    with open(path, "r+b") as fh:
        fh.seek(offset)
        byte = fh.read(1)
        fh.seek(offset)
        fh.write(bytes([byte[0] ^ 0xFF]))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def state(run) -> str:
    return SnapshotRecord.objects.get(name=run.snapshot_name).integrity


def test_it_verifies_clean_snapshots_reading_each_shared_inode_once(engine):
    for i in range(5):
        (engine.src / f"f{i}").write_bytes(os.urandom(50_000))
    runs = backups(engine, 3)

    ok, out = verify()

    assert ok, out
    record = VerifyRun.objects.get()
    assert record.outcome == VerifyRun.Outcome.OK and record.snapshots == 3
    assert record.files_checked == 15 and record.files_read == 5
    assert record.bytes_read == 5 * 50_000
    assert "3 snapshots, 15 files checked, 5 read" in out
    for run in runs:
        snap = SnapshotRecord.objects.get(name=run.snapshot_name)
        assert snap.integrity == Integrity.VERIFIED
        assert snap.verified_at == snap.fully_verified_at == record.started_at


def test_a_flipped_byte_names_every_snapshot_sharing_the_inode_and_is_never_linked_again(engine):
    (engine.src / "precious.db").write_bytes(os.urandom(200_000))
    (engine.src / "other.txt").write_text("fine\n")
    runs = backups(engine, 3)
    flip_byte(in_snapshot(engine, runs[0], "precious.db"))

    ok, out = verify("--snapshot", runs[0].snapshot_name)

    assert not ok
    line = next(x for x in out.splitlines() if x.startswith("CHANGED"))
    assert "precious.db: content differs from the manifest (xxh128)" in line
    for run in runs:  # verified one snapshot, named all three: they share the inode
        assert run.snapshot_name in line
        assert state(run) == Integrity.CORRUPT
    assert "1 problems" in out
    event = Event.objects.get(kind=Event.Kind.SNAPSHOT_CORRUPT)
    assert "precious.db" in event.message and event.host == engine.host
    assert sorted(event.details["snapshots"]) == sorted(r.snapshot_name for r in runs)
    verify("--snapshot", runs[0].snapshot_name)
    assert Event.objects.filter(kind=Event.Kind.SNAPSHOT_CORRUPT).count() == 1  # same one
    warning = corrupt_warning(SnapshotRecord.objects.get(name=runs[1].snapshot_name))
    assert "1 known-corrupt files" in warning and "precious.db" in warning  # for restore
    said, err = io.StringIO(), io.StringIO()
    call_command(
        "restore", "web1", str(engine.src / "precious.db"), "--snapshot", runs[1].snapshot_name,
        "--to-dir", str(engine.root.parent / "restored"), "--no-wait", stdout=said, stderr=err,
    )  # fmt: skip
    assert err.getvalue().startswith(f"warning: snapshot {runs[1].snapshot_name} has 1 known")
    assert "precious.db" in err.getvalue() and "queued" in said.getvalue()
    plan = io.StringIO()
    call_command("retention", "web1", stdout=plan)
    assert plan.getvalue().count("corrupt (1 files)") == 3
    names = ", ".join(sorted((r.snapshot_name for r in runs), reverse=True))
    assert f"corrupt: {names} (never a backup's base" in plan.getvalue()

    fresh = run_backup(engine.host)

    assert fresh.outcome == BackupRun.Outcome.SUCCESS, fresh.message
    assert fresh.base_snapshot_name == ""  # every older snapshot holds the damaged inode
    assert fresh.files_transferred == 2
    new = in_snapshot(engine, fresh, "precious.db")
    assert new.read_bytes() == (engine.src / "precious.db").read_bytes()
    assert new.stat().st_ino != in_snapshot(engine, runs[0], "precious.db").stat().st_ino
    ok, out = verify("--snapshot", fresh.snapshot_name)
    assert ok, out
    assert state(fresh) == Integrity.VERIFIED
    assert corrupt_warning(SnapshotRecord.objects.get(name=fresh.snapshot_name)) == ""


def test_a_corrupt_snapshot_is_skipped_as_base_for_an_older_clean_one(engine):
    (engine.src / "a").write_text("a\n")
    first = run_backup(engine.host)
    (engine.src / "b").write_text("b\n")
    second = run_backup(engine.host)
    flip_byte(in_snapshot(engine, second, "b"), 0)
    assert not verify()[0]
    assert (state(first), state(second)) == (Integrity.VERIFIED, Integrity.CORRUPT)
    third = run_backup(engine.host)
    assert third.base_snapshot_name == first.snapshot_name
    assert third.files_transferred == 1  # b again; a linked from the clean snapshot


def test_deleted_replaced_and_symlinked_files_are_named_never_followed(engine, tmp_path):
    (engine.src / "dir").mkdir()
    for name in ("gone", "dir/x", "fifo-later", "kept"):
        (engine.src / name).write_bytes(b"data " + name.encode())
    (run,) = backups(engine, 1)
    in_snapshot(engine, run, "gone").unlink()
    target = in_snapshot(engine, run, "fifo-later")
    target.unlink()
    os.mkfifo(target)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "x").write_bytes(b"data dir/x")  # same bytes: only following would pass
    shutil.rmtree(in_snapshot(engine, run, "dir"))
    os.symlink(outside, in_snapshot(engine, run, "dir"))

    ok, out = verify()

    assert not ok
    assert f"MISSING {str(engine.src).lstrip('/')}/gone: no longer in the snapshot" in out
    assert "fifo-later: no longer a regular file" in out
    assert "dir/x: a directory on its path was replaced by a symlink" in out
    assert "kept" not in out
    assert VerifyRun.objects.get().problems == 3
    assert state(run) == Integrity.CORRUPT


@pytest.mark.parametrize("listing", ["directory listing", "listing disagrees with lstat"])
def test_damage_in_one_of_several_snapshots_sharing_inodes_is_named_there_only(
    engine, monkeypatch, listing
):
    for name in ("a", "b", "c", "d"):
        (engine.src / name).write_bytes(os.urandom(10_000))
    runs = backups(engine, 3)
    middle = runs[1].snapshot_name
    in_snapshot(engine, runs[1], "a").unlink()
    b = in_snapshot(engine, runs[1], "b")
    st, data = b.stat(), b.read_bytes()
    b.unlink()  # another inode: same size and mtime, other bytes
    b.write_bytes(data[::-1])
    os.utime(b, ns=(st.st_atime_ns, st.st_mtime_ns))
    c = in_snapshot(engine, runs[1], "c")
    c.unlink()
    os.symlink("/etc/passwd", c)
    if listing == "listing disagrees with lstat":  # as where d_ino is not st_ino
        from pobsync_runner.safe_read import DirCursor

        real = DirCursor.identity

        def wrong_inode(self, path):
            seen = real(self, path)
            return None if seen is None else (seen[0], seen[1] + 7, seen[2])

        monkeypatch.setattr(DirCursor, "identity", wrong_inode)

    ok, out = verify()

    assert not ok
    src = str(engine.src).lstrip("/")
    problems = sorted(x for x in out.splitlines() if x.startswith(("MISSING", "CHANGED")))
    assert problems == [
        f"CHANGED {src}/b: content differs from the manifest (xxh128) (in {middle})",
        f"CHANGED {src}/c: no longer a regular file (in {middle})",
        f"MISSING {src}/a: no longer in the snapshot (in {middle})",
    ]
    record = VerifyRun.objects.get()
    assert record.problems == 3 and record.files_checked == 12
    assert record.files_read == 5  # a, b, c, d once for all three, and the new b
    assert [state(r) for r in runs] == [Integrity.VERIFIED, Integrity.CORRUPT, Integrity.VERIFIED]


@contextmanager
def as_nobody():
    if os.geteuid() != 0:
        yield
        return
    os.setegid(65534)
    os.seteuid(65534)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


def test_an_unreadable_file_is_named_and_the_run_goes_on(engine, tmp_path):
    for name in ("secret", "open"):
        (engine.src / name).write_bytes(b"x" * 1000)
    (run,) = backups(engine, 1)
    # Everything readable by a non-root reader except one file (root reads all).
    for path in [engine.root, *engine.root.parents]:
        path.chmod(path.stat().st_mode | 0o755)
    for dirpath, dirnames, filenames in os.walk(engine.host_dir):
        for d in dirnames:
            os.chmod(os.path.join(dirpath, d), 0o755)  # noqa: S103  (a test tree)
        for f in filenames:
            os.chmod(os.path.join(dirpath, f), 0o644)
    engine.host_dir.chmod(0o777)  # the completed manifest is written by that reader
    (engine.host_dir / ".lock").chmod(0o666)
    in_snapshot(engine, run, "secret").chmod(0o000)

    with as_nobody():
        ok, out = verify()

    assert not ok
    assert "UNREADABLE" in out and "secret: Permission denied" in out
    assert "open" not in out.replace("open(", "")
    assert VerifyRun.objects.get().files_read == 1


def write_manifest(snapshot, lines: list[bytes]) -> None:
    (snapshot / MANIFEST_FILE).write_bytes(b"".join(lines))


def test_hostile_and_truncated_manifests_give_clear_results(engine):
    (engine.src / "f").write_bytes(b"payload")
    one, two, three = backups(engine, 3)
    good = (engine.host_dir / one.snapshot_name / MANIFEST_FILE).read_bytes().splitlines(True)
    header, entry = good[0], good[1]
    write_manifest(
        engine.host_dir / one.snapshot_name,
        [
            header,
            b"-\t5\t0\t1\t../../etc/shadow\n",
            b"-\t5\t0\t1\t/etc/shadow\n",
            b"-\t99999999999999999999999\t0\t1\tbig\n",
            b"zz\t5\t0\t1\tnot-hex\n",
            b"x" * 20000 + b"\n",
            entry,
            b"end 1\n",
        ],
    )
    write_manifest(engine.host_dir / two.snapshot_name, [header, entry[:-1]])  # cut mid-line
    write_manifest(engine.host_dir / three.snapshot_name, [b"\x00garbage\n"])
    before = (engine.host_dir / one.snapshot_name / MANIFEST_FILE).read_bytes()

    ok, out = verify()

    assert not ok and "Traceback" not in out
    assert out.count("MANIFEST") >= 7
    for n in (2, 3, 4, 5):
        assert f"MANIFEST: line {n}: not a manifest entry (in {one.snapshot_name})" in out
    assert "line 6: longer than 16384 bytes" in out
    assert "manifest built" not in out
    assert f"truncated after 0 entries (no trailer) (in {two.snapshot_name})" in out
    assert (
        f"manifest header is damaged or from an unknown version (in {three.snapshot_name})" in out
    )
    assert (engine.host_dir / one.snapshot_name / MANIFEST_FILE).read_bytes() == before
    assert {state(r) for r in (one, two, three)} == {Integrity.CORRUPT}


def test_a_snapshot_without_a_manifest_gets_one_on_its_first_verification(engine):
    (engine.src / "a").write_bytes(os.urandom(3000))
    (engine.src / "b").write_bytes(b"")
    (run,) = backups(engine, 1)
    snapshot = engine.host_dir / run.snapshot_name
    (snapshot / MANIFEST_FILE).unlink()

    ok, out = verify()

    assert ok, out
    assert f"{run.snapshot_name}: manifest built: 2 checksums added" in out
    reader = open_manifest(snapshot)
    entries = list(reader)
    reader.close()
    assert reader.complete and len(entries) == 2
    for entry in entries:
        path = snapshot / os.fsdecode(entry.path)
        expected = subprocess.run(["xxh128sum", str(path)], capture_output=True, check=True)
        assert entry.checksum == expected.stdout.split()[0].decode()
    assert verify()[0]


def test_a_sample_reads_part_of_the_files_and_leaves_them_unverified(engine):
    for i in range(200):
        (engine.src / f"f{i:03}").write_bytes(b"%d" % i)
    backups(engine, 1)
    ok, out = verify("--sample", "25")
    assert ok, out
    run = VerifyRun.objects.get()
    assert 10 < run.files_read < 120 and run.files_checked == 200
    assert SnapshotRecord.objects.get().integrity == Integrity.UNVERIFIED


def test_bad_arguments_are_one_line(engine):
    (engine.src / "f").write_text("x")
    backups(engine, 1)
    for args, needle in [
        (["--snapshot", "2001-01-01T000000Z"], "no complete snapshot '2001-01-01T000000Z'"),
    ]:
        with pytest.raises(CommandError, match=needle):
            call_command("verify", "web1", *args, stdout=io.StringIO())
    with pytest.raises(CommandError, match="unknown host 'nope'"):
        call_command("verify", "nope", stdout=io.StringIO())
    assert UNKNOWN == "-"


def test_the_scheduled_rule_reads_outdated_snapshots_in_full_and_samples_the_rest(engine):
    from datetime import timedelta

    from django.utils import timezone

    from pobsync_runner.verify import VerifyRequest, run_verify

    (engine.src / "x").write_bytes(b"version one")
    old = run_backup(engine.host)
    (engine.src / "x").write_bytes(b"version two, longer")
    new = run_backup(engine.host)
    now = timezone.now()
    recent, stale = now - timedelta(days=1), now - timedelta(days=40)
    SnapshotRecord.objects.filter(name=old.snapshot_name).update(fully_verified_at=stale)
    SnapshotRecord.objects.filter(name=new.snapshot_name).update(fully_verified_at=recent)

    run, report = run_verify(engine.host, VerifyRequest(sample_percent=0, outdated_days=30))

    assert run.outcome == VerifyRun.Outcome.OK and run.files_read == 1  # the old x only
    old_rec = SnapshotRecord.objects.get(name=old.snapshot_name)
    new_rec = SnapshotRecord.objects.get(name=new.snapshot_name)
    assert old_rec.fully_verified_at == run.started_at and old_rec.integrity == Integrity.VERIFIED
    assert new_rec.fully_verified_at == recent and new_rec.integrity == Integrity.UNVERIFIED
    assert new_rec.verified_at == run.started_at
    assert report.snapshots[new.snapshot_name].read_all is False
