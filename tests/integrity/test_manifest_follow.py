"""A full backup's transfer log followed while rsync runs (transfer_log.LogFollower): the
same files and checksums as reading the log afterwards, each file stat()ed only once the
next one is logged (its manifest line made then), and a file that was not there as
logged stat()ed again by the manifest."""

from __future__ import annotations

import os
import threading
import time
import tracemalloc

import pytest

from pobsync_models.models import BackupRun
from pobsync_runner import transfer_log
from pobsync_runner.backup import run_backup
from pobsync_runner.manifest import MANIFEST_FILE, line_of, unescape_path
from pobsync_runner.manifest_build import carry_over
from pobsync_runner.transfer_log import LogFollower, logged_files
from tests.engine.slow_transfer import wait_for
from tests.integrity.test_manifest_backup import _exact, entries, xxh128sum

STAMP = b"2026/12/01 06:00:00 [7] "


def item(name: bytes, size: int, checksum: int) -> bytes:
    return STAMP + b"@pobsync|>f+++++++++|%d|%032x|%s\n" % (size, checksum, name)


@pytest.fixture
def fast_follow(monkeypatch):
    monkeypatch.setattr(transfer_log, "FOLLOW_SECONDS", 0.01)


def test_it_stats_each_file_once_the_next_is_logged_and_ends_as_the_log_read_after(
    tmp_path, fast_follow
):
    root, log = tmp_path / "snap", tmp_path / "t.log"
    (root / "d").mkdir(parents=True)
    follower = LogFollower(log, root).start()
    try:
        with open(log, "ab", buffering=0) as out:
            out.write(STAMP + b"Client negotiated checksum: xxh128\n")
            for i in (2, 0, 1):  # log order is not path order
                (root / "d" / f"f{i}").write_bytes(b"x" * i)
                out.write(item(b"d/f%d" % i, i, i))
            out.write(item(b"d/f3", 3, 3)[:30])  # half a line: not an item yet
            assert wait_for(lambda: follower.stated == 2, timeout=10)
            time.sleep(0.1)
            assert follower.stated == 2  # d/f1 may not be in place
            (root / "d" / "f3").write_bytes(b"x" * 3)
            out.write(item(b"d/f3", 3, 3)[30:])
            assert wait_for(lambda: follower.stated == 3, timeout=10)
    finally:
        followed = follower.followed()
    assert followed is not None
    logged, algorithm = logged_files([(log, b"")], 1000)
    assert (followed.algorithm, followed.files) == (algorithm, 4)
    records = _records(followed)
    assert [path for path, _ in records] == sorted(logged)
    by_path = dict(records)
    st = os.lstat(root / "d" / "f1")
    line = line_of(logged[b"d/f1"][1], 1, st.st_mtime_ns, st.st_ino, b"d/f1")
    assert by_path[b"d/f1"] == line  # its manifest line, made early
    # The last one is left to the manifest's own stat(), with what the log says.
    assert by_path[b"d/f3"] == b"\t3\t%s\td/f3\n" % logged[b"d/f3"][1]
    assert list(followed.sorted_blocks()) == []  # once: the spill went with the first reading


def _records(followed) -> list[tuple[bytes, bytes]]:
    """(raw path, its line) in the order the follower gives them: a manifest line, or a
    tab, the logged size and checksum, and the path as a manifest line holds it."""
    lines = b"".join(followed.sorted_blocks()).splitlines(keepends=True)
    return [(unescape_path(line[:-1].rpartition(b"\t")[2]), line) for line in lines]


def test_a_file_not_as_logged_at_its_stat_gets_the_manifests_own_stat(tmp_path):
    """A size other than the logged one at the early stat(): no line is made then, and
    the manifest's own stat() decides (the checksum only if the size is the logged one
    by then)."""
    root, log = tmp_path / "snap", tmp_path / "t.log"
    (root / "d").mkdir(parents=True)
    (root / "d" / "a").write_bytes(b"x" * 5)  # logged with 9 bytes
    (root / "d" / "b").write_bytes(b"x" * 2)
    (root / "d" / "c").write_bytes(b"x" * 3)
    log.write_bytes(
        STAMP + b"Client negotiated checksum: xxh128\n"
        + item(b"d/a", 9, 1) + item(b"d/b", 2, 2) + item(b"d/c", 3, 3)
    )  # fmt: skip
    follower = LogFollower(log, root)
    follower._take(final=False)  # what the thread does while rsync runs
    assert follower.stated == 1  # d/b; d/c is the last one logged
    assert carry_over(root, None, [(log, b"")], 3, follower)
    _, found = entries(root)
    assert (found[b"d/a"].size, found[b"d/a"].checksum) == (5, "-")
    assert (found[b"d/b"].checksum, found[b"d/c"].checksum) == (f"{2:032x}", f"{3:032x}")


@pytest.mark.parametrize("trouble", ["damaged", "twice", "no log"])
def test_a_log_it_cannot_vouch_for_gives_no_manifest(tmp_path, fast_follow, trouble):
    root, log = tmp_path / "snap", tmp_path / "t.log"
    root.mkdir()
    for i in range(5):
        (root / f"f{i}").write_bytes(b"x")
    lines = [STAMP + b"Client negotiated checksum: xxh128\n"] + [
        item(b"f%d" % i, 1, i) for i in range(5)
    ]
    if trouble == "damaged":
        lines.insert(3, STAMP + b"@pobsync|>f+++++++++|1\n")
    if trouble == "twice":
        lines.append(item(b"f1", 1, 9))
    if trouble != "no log":
        log.write_bytes(b"".join(lines))
    follower = LogFollower(log, root).start()
    time.sleep(0.05)
    followed = follower.followed()
    if trouble == "no log":  # rsync never wrote one: nothing logged, nothing to vouch
        assert followed is not None and followed.files == 0
        assert list(followed.sorted_blocks()) == []
    elif trouble == "damaged":
        assert followed is None
        assert follower._spill is None  # nothing kept
    else:  # a name logged twice: both come out, and the manifest refuses them
        # Both records are spilled, and one line comes out: fewer lines than files.
        assert followed.files == 6
        assert [path for path, _ in _records(followed)] == [b"f%d" % i for i in range(5)]
        follower = LogFollower(log, root).start()
        # rsync counts 5 regular files (one received twice): the count alone would pass.
        assert not carry_over(root, None, [(log, b"")], 5, follower)
        assert not (root / MANIFEST_FILE).exists()
        assert not list(root.glob(".pobsync-manifest*"))


def test_its_memory_stays_flat_in_the_number_of_files(tmp_path):
    """The records go to a spill file, not to memory: 160,000 files logged cost this
    process what 40,000 do (the items of one block of the log at a time)."""
    root, log = tmp_path / "snap", tmp_path / "t.log"
    root.mkdir()

    def peak(files: int) -> int:
        with open(log, "wb") as out:
            out.write(STAMP + b"Client negotiated checksum: xxh128\n")
            out.writelines(item(b"dir/f%07d" % i, i, i) for i in range(files))
        tracemalloc.start()
        try:
            follower = LogFollower(log, root)
            follower._take(final=False)  # what the thread does, here to be measured
            followed = follower.followed()
            assert followed is not None and followed.files == files
            count, last = 0, b""
            for block in followed.sorted_blocks():
                count += block.count(b"\n")
                last = block[block.rfind(b"\n", 0, -1) + 1 :]
            assert count == files
            assert last == b"\t%d\t%032x\tdir/f%07d\n" % (files - 1, files - 1, files - 1)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    small, large = peak(40_000), peak(160_000)  # a log of four blocks, and of sixteen
    assert large < 1.25 * small, (small, large)  # about one block's items, either way


def _slow_full_backup(engine, monkeypatch, files: int = 60, after_finish=None):
    """A full backup slowed down (--bwlimit) so the follower reads the log while rsync
    runs; `after_finish(follower)` runs once rsync is done, before the manifest."""
    monkeypatch.setattr(transfer_log, "FOLLOW_SECONDS", 0.05)
    for i in range(files):
        d = engine.src / f"d{i % 4}"
        d.mkdir(exist_ok=True)
        (d / f"f{i:03}").write_bytes(os.urandom(8_000))
    engine.host.rsync_options = ["--bwlimit=400"]
    engine.host.save()
    seen = []
    real_finish = LogFollower.finish

    def finish(self):
        real_finish(self)
        if not seen:
            seen.append(self.stated)
            if after_finish is not None:
                after_finish(self)

    monkeypatch.setattr(LogFollower, "finish", finish)
    run = run_backup(engine.host)
    assert run.outcome == BackupRun.Outcome.SUCCESS, run.message
    assert seen, "no follower ran for a full backup"
    return engine.host_dir / run.snapshot_name, seen[0]


def test_a_full_backups_manifest_from_the_followed_log_is_exact(engine, monkeypatch):
    snap, stated = _slow_full_backup(engine, monkeypatch)
    assert stated >= 30, stated  # most files were stat()ed while rsync ran
    found = _exact(snap)
    assert len(found) == 60
    for path, entry in found.items():
        assert entry.checksum == xxh128sum(snap / os.fsdecode(path))


def test_names_a_manifest_escapes_come_out_as_the_walk_writes_them(tmp_path, monkeypatch):
    """A name with a tab, a newline or a backslash (in rsync's log as they are, or as its
    `\\#012` escape) gets its escaped form in the manifest line the follower makes, in a
    block of its own or held over into a block of plain names; the manifest is what the
    walk builds."""
    monkeypatch.setattr(transfer_log, "LOG_BLOCK", 120)  # a few items a block
    root, log = tmp_path / "snap", tmp_path / "t.log"
    (root / "d").mkdir(parents=True)
    names = [b"a\tb", b"back\\slash", b"c", b"new\nline", b"plain1", b"plain2", b"z"]
    lines = [STAMP + b"Client negotiated checksum: xxh128\n"]
    for i, name in enumerate(names):
        (root / "d" / os.fsdecode(name)).write_bytes(b"x" * i)
        # As rsync's log prints them: a tab and a lone backslash as they are.
        lines.append(item(b"d/" + name.replace(b"\n", b"\\#012"), i, i))
    log.write_bytes(b"".join(lines))
    follower = LogFollower(log, root)
    follower._take(final=False)
    assert follower.stated == len(names) - 1
    assert carry_over(root, None, [(log, b"")], len(names), follower)
    found = _exact(root)
    assert sorted(found) == sorted(b"d/" + name for name in names)
    for i, name in enumerate(names):
        assert found[b"d/" + name].checksum == f"{i:032x}"


def test_the_follower_thread_ends_with_the_backup_even_when_rsync_fails(engine, monkeypatch):
    engine.host.sources = ["/no/such/source"]
    engine.host.save()
    run = run_backup(engine.host)
    assert run.outcome == BackupRun.Outcome.FAILED
    assert not [t for t in threading.enumerate() if t.name.startswith("LogFollower")]


OUT = b""  # rsync's stdout (--out-format) has no date and pid in front


@pytest.mark.parametrize("stamp", [STAMP, OUT])
def test_a_full_backups_block_is_read_in_one_pass_as_the_general_way_reads_it(stamp):
    """received_files() is logged_items(parse_block()) for the blocks a full backup
    logs, and declines (None) every block that needs the general way."""
    plain = [
        b"@pobsync|cd+++++++++|4096|                                |srv/\n",
        b"@pobsync|>f+++++++++|12|%032x|srv/a b|c\n" % 1,
        b"@pobsync|cL+++++++++|2|                                |srv/link\n",
        b"@pobsync|>f+++++++++|0|%032x  |srv/new\\#012line\n" % 2,
        b"@pobsync|cD+++++++++|0|                                |srv/dev\n",
        b"@pobsync|>f+++++++++|7|%040x|srv/sha-like\n" % 3,
    ]
    block = b"Client negotiated checksum: xxh128\n" + b"".join(stamp + line for line in plain)
    named, items, damaged = transfer_log.parse_block(block)
    assert not damaged and named == "xxh128"
    general = transfer_log.logged_items(items, b"")
    assert transfer_log.received_files(block) == general
    assert [p for p, _, _ in general] == [b"srv/a b|c", b"srv/new\nline", b"srv/sha-like"]
    for odd in (
        b"@pobsync|>f+++++++++|5|                                |srv/no-checksum\n",
        b"@pobsync|hf+++++++++|5|%032x|srv/hard => srv/a\n" % 4,
        b"@pobsync|>f+++++++++|5|%032x\n" % 5,  # damaged
        b"@pobsync|cf+++++++++|5|%032x|srv/local copy\n" % 6,
    ):
        assert transfer_log.received_files(block + stamp + odd) is None
