"""The child that compares the snapshots' listings ahead of a whole host's verification
(pobsync_runner.listing_ahead): its records carry any name exactly, a half-sent record
is never taken, and the child never outlives its use. That the verification finds the
same with and without the child's results: tests/integrity/test_verify_merge.py."""

from __future__ import annotations

import os
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

import pobsync_runner.listing_ahead as listing_ahead
from pobsync_runner.integrity import Target, _differing_names, verify
from pobsync_runner.listing_ahead import (
    ABSENT,
    NOT_READY,
    ListingsAhead,
    _parse,
    _record,
)
from pobsync_runner.manifest import MANIFEST_FILE
from pobsync_runner.safe_read import NOT_REGULAR, DirCursor
from tests.integrity.test_verify_merge import _write_manifest


def _gone(pid: int) -> bool:
    return not Path(f"/proc/{pid}").exists()


@pytest.mark.parametrize(
    "directory,names",
    [
        (b"", {}),
        (b"a/b", {b"x": (5, ABSENT, NOT_REGULAR)}),
        (
            b"caf\xe9/new\nline",
            {b"\xff\xfe": (1, 2, 3), b"tab\there": (2**40, 0, ABSENT), b"n" * 255: (7, 7, 8)},
        ),
        (b"gone", None),
    ],
)
def test_a_record_carries_its_directory_names_and_inodes_exactly(directory, names):
    record = _record(directory, names, 3)
    buffer = bytearray(b"junk" + record + record)
    assert _parse(buffer, 4, 3) == (4 + len(record), directory, names)
    assert _parse(buffer, 4 + len(record), 3) == (len(buffer), directory, names)
    for cut in range(4, 4 + len(record)):  # half a record is never taken
        assert _parse(buffer[:cut], 4, 3) is None


def _snapshots(root: Path) -> list[Path]:
    """Three snapshots of one tree: s2 lists another inode for d/f1, s3 an extra name in
    d and no directory e."""
    snaps = []
    for name in ("s1", "s2", "s3"):
        snap = root / name
        for d in ("d", "e", "e/g"):
            (snap / d).mkdir(parents=True)
        for path in ("d/f0", "d/f1", "e/f2", "e/g/f3", "top"):
            if snaps:
                os.link(snaps[0] / path, snap / path)
            else:
                (snap / path).write_bytes(path.encode())
        snaps.append(snap)
    (snaps[1] / "d/f1").unlink()
    (snaps[1] / "d/f1").write_bytes(b"rewritten")
    (snaps[2] / "d/extra").write_bytes(b"x")
    for path in ("e/g/f3", "e/f2"):
        (snaps[2] / path).unlink()
    (snaps[2] / "e/g").rmdir()
    (snaps[2] / "e").rmdir()
    for snap in snaps:
        _write_manifest(snap, None)
    return snaps


@contextmanager
def _ahead(snaps: list[Path]):
    """ListingsAhead over cursors of `snaps`, waiting here for each of the child's
    records; yields (ahead, its cursors, cursors of the same snapshots without hints)."""
    hinted = [DirCursor(p) for p in snaps]
    plain = [DirCursor(p) for p in snaps]
    ahead = ListingsAhead(hinted, snaps, _differing_names)
    os.set_blocking(ahead.fd, True)
    try:
        yield ahead, hinted, plain
    finally:
        ahead.close()
        for cursor in hinted + plain:
            cursor.close()


def test_the_childs_answers_are_the_verifications_own(tmp_path):
    snaps = _snapshots(tmp_path)
    with _ahead(snaps) as (ahead, hinted, plain):
        pid = ahead.pid
        live = [(None, c) for c in plain]
        # The first manifest's directories in its order ("" holds "top", last).
        for parent in (b"d", b"e", b"e/g", b""):
            assert ahead.differing(parent) == _differing_names(parent, live), parent
        assert ahead.differing(b"e") is NOT_READY  # passed: the child sends no more
    assert _gone(pid)


def test_the_answers_name_what_differs(tmp_path):
    snaps = _snapshots(tmp_path)
    with _ahead(snaps) as (ahead, _, _):
        assert ahead.differing(b"d") == {b"f1", b"extra"}
        assert ahead.differing(b"e") is None  # s3 cannot list it: compared per path
        # Each snapshot's own manifest, and e, which s3 lacks.
        assert ahead.differing(b"") == {os.fsencode(MANIFEST_FILE), b"e"}


def test_each_snapshots_listing_from_the_child_is_the_one_it_reads_itself(tmp_path):
    snaps = _snapshots(tmp_path)
    (snaps[1] / "d" / "fifo").parent.mkdir(exist_ok=True)
    os.mkfifo(snaps[1] / "d" / "fifo")  # not a regular file, in s2 only
    with _ahead(snaps) as (ahead, hinted, plain):
        for parent in (b"d", b"e/g", b""):
            for k in range(len(snaps)):
                if k == 0 or ahead._names(parent) is None:
                    continue
                hint = hinted[k].hint(parent)  # what inodes() would take
                assert hint is not None, (parent, k)
                assert hint == plain[k].inodes(parent)[1:], (parent, k)
                assert hinted[k].inodes(parent)[1:] == plain[k].inodes(parent)[1:]
        assert hinted[1].inodes(b"d")[2]["fifo"] == NOT_REGULAR
        assert "extra" not in hinted[1].inodes(b"d")[2]
    assert all(c.hint is None for c in hinted)  # closed: the cursors list for themselves


def test_without_a_first_manifest_the_child_sends_nothing_and_is_reaped(tmp_path):
    snaps = _snapshots(tmp_path)
    (snaps[0] / MANIFEST_FILE).unlink()
    cursors = [DirCursor(p) for p in snaps]
    ahead = ListingsAhead(cursors, snaps, _differing_names)
    pid = ahead.pid
    deadline = time.monotonic() + 10
    while ahead.fd is not None and time.monotonic() < deadline:
        assert ahead.differing(b"d") is NOT_READY
        assert cursors[1].hint(b"d") is None  # so the cursor lists it itself
        time.sleep(0.01)
    assert ahead.fd is None and ahead.pid is None  # end of the pipe seen: closed, reaped
    assert _gone(pid)
    ahead.close()
    for cursor in cursors:
        cursor.close()


def test_closing_early_ends_the_child_at_once(tmp_path):
    snaps = _snapshots(tmp_path)
    cursors = [DirCursor(p) for p in snaps]
    ahead = ListingsAhead(cursors, snaps, _differing_names)
    pid = ahead.pid
    ahead.close()
    ahead.close()  # twice is harmless
    assert _gone(pid)
    for cursor in cursors:
        cursor.close()


def test_without_a_process_to_spare_the_verification_lists_everything_itself(tmp_path, monkeypatch):
    snaps = _snapshots(tmp_path)

    def no_fork() -> int:
        raise BlockingIOError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(os, "fork", no_fork)
    cursors = [DirCursor(p) for p in snaps]
    ahead = ListingsAhead(cursors, snaps, _differing_names)
    assert ahead.pid is None and ahead.differing(b"d") is NOT_READY
    assert all(c.hint is None for c in cursors)
    ahead.close()
    report = verify([Target(p.name, p) for p in snaps])
    assert report.problems == 0 and report.files_checked == 5 + 5 + 4


def test_directories_the_verification_never_asks_about_do_not_stall_the_child(
    tmp_path, monkeypatch
):
    # More directories than it keeps read ahead, none of them asked for (only the first
    # snapshot holds their files, say): a later directory still comes from the child.
    monkeypatch.setattr(listing_ahead, "MAX_PENDING", 4)
    snaps = []
    for name in ("s1", "s2"):
        snap = tmp_path / name
        for i in range(20):
            (snap / f"d{i:02d}").mkdir(parents=True)
            (snap / f"d{i:02d}/f").write_bytes(b"x")
        _write_manifest(snap, None)
        snaps.append(snap)
    with _ahead(snaps) as (ahead, hinted, plain):
        deadline = time.monotonic() + 10
        answer = NOT_READY
        while answer is NOT_READY and time.monotonic() < deadline:
            answer = ahead.differing(b"d19")
        assert answer == {b"f"}  # each snapshot has its own copy of d19/f
        assert len(ahead.pending) <= 4
