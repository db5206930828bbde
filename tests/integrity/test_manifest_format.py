"""The manifest format on its own (no sshd): hostile names round-trip, the walk's order
is the byte order of full paths, the build merges rsync's log and the base by inode."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pobsync_runner.manifest import (
    MANIFEST_FILE,
    UNKNOWN,
    Entry,
    ManifestError,
    ManifestWriter,
    escape_path,
    open_manifest,
    safe_relative,
    unescape_path,
    walk_files,
)
from pobsync_runner.manifest_build import build_manifest

HOSTILE = [b"tab\there", b"new\nline", b"back\\slash", b"cr\rx", b"\xff\xfe-not-utf8", b"-"]


def read(snapshot: Path) -> list[Entry]:
    reader = open_manifest(snapshot)
    try:
        entries = list(reader)
    finally:
        reader.close()
    assert reader.complete and not reader.problems
    return entries


@pytest.mark.parametrize("raw", HOSTILE)
def test_it_round_trips_hostile_names(raw):
    assert b"\t" not in escape_path(raw) and b"\n" not in escape_path(raw)
    assert unescape_path(escape_path(raw)) == raw


@pytest.mark.parametrize(
    "raw,ok",
    [
        (b"a/b", True),
        (b"../etc/passwd", False),
        (b"a/../../b", False),
        (b"/etc/passwd", False),
        (b"a//b", False),
        (b"a/./b", False),
        (b"a/", False),
        (b"nul\0byte", False),
        (b"", False),
        (b"..hidden/...", True),
    ],
)
def test_it_accepts_only_plain_relative_paths(raw, ok):
    assert safe_relative(raw) is ok


def test_the_walk_yields_the_byte_order_of_full_paths_and_never_follows_links(tmp_path):
    for rel in ["a-b", "a/x", "a0", "a/y/z", "b", ".pobsync-not-ours/f"]:
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(rel)
    os.symlink("/etc", tmp_path / "evil")
    os.symlink("a-b", tmp_path / "link-to-file")
    (tmp_path / MANIFEST_FILE).write_text("ours, skipped")
    walked = [path for path, _ in walk_files(tmp_path)]
    assert walked == sorted(walked)
    assert walked == [b"a-b", b"a/x", b"a/y/z", b"a0", b"b"]


def test_the_writer_refuses_paths_out_of_order(tmp_path):
    writer = ManifestWriter(tmp_path, "xxh128")
    writer.write(Entry(b"b", 1, 0, 1, UNKNOWN))
    with pytest.raises(ValueError):
        writer.write(Entry(b"a", 1, 0, 2, UNKNOWN))
    writer.abort()
    assert not list(tmp_path.iterdir())


def test_a_missing_or_foreign_manifest_is_one_clear_error(tmp_path):
    with pytest.raises(ManifestError, match="no manifest"):
        open_manifest(tmp_path)
    (tmp_path / MANIFEST_FILE).write_bytes(b"pobsync-manifest 1 sha512\n")
    with pytest.raises(ManifestError, match="unknown version"):
        open_manifest(tmp_path)


def rsync_log(path: Path, records: list[tuple[bytes, int, str]], algorithm="xxh128") -> None:
    lines = [f"2026/11/30 02:55:40 [1] Client negotiated checksum: {algorithm}\n".encode()]
    for name, size, checksum in records:
        lines.append(
            b"2026/11/30 02:55:40 [2] @pobsync|>f+++++++++|%d|%s|%s\n"
            % (size, checksum.encode(), name)
        )
    path.write_bytes(b"".join(lines))


def test_the_build_takes_rsyncs_checksums_and_the_bases_by_inode(tmp_path):
    base, new = tmp_path / "base", tmp_path / "new"
    base.mkdir()
    new.mkdir()
    (base / "same").write_bytes(b"same")
    (base / "replaced").write_bytes(b"old")
    rsync_log(tmp_path / "base.log", [(b"same", 4, "a" * 32), (b"replaced", 3, "b" * 32)])
    build_manifest(base, transfer_logs=[(tmp_path / "base.log", b"")], base_dir=None)
    os.link(base / "same", new / "same")  # what --link-dest does
    (new / "replaced").write_bytes(b"old")  # same bytes, but a new inode rsync did not log
    (new / "fresh").write_bytes(b"fresh!")
    # rsync's log escaping is ambiguous: two records for one name are both dropped
    rsync_log(
        tmp_path / "new.log",
        [(b"fresh", 6, "c" * 32), (b"dup", 1, "d" * 32), (b"dup", 1, "e" * 32)],
    )
    (new / "dup").write_bytes(b"x")

    result = build_manifest(new, transfer_logs=[(tmp_path / "new.log", b"")], base_dir=base)

    found = {e.path: e.checksum for e in read(new)}
    assert found == {b"dup": UNKNOWN, b"fresh": "c" * 32, b"replaced": UNKNOWN, b"same": "a" * 32}
    assert (result.algorithm, result.entries, result.known) == ("xxh128", 4, 2)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".pobsync-manifest-")]


def test_an_algorithm_verify_cannot_compute_leaves_checksums_unknown(tmp_path):
    (tmp_path / "snap").mkdir()
    (tmp_path / "snap" / "f").write_bytes(b"1")
    rsync_log(tmp_path / "log", [(b"f", 1, "a" * 16)], algorithm="xxh3")
    result = build_manifest(
        tmp_path / "snap", transfer_logs=[(tmp_path / "log", b"")], base_dir=None
    )
    assert result.algorithm == "xxh128"
    assert [e.checksum for e in read(tmp_path / "snap")] == [UNKNOWN]


def test_the_backup_argv_asks_rsync_for_its_checksums_and_protects_the_metadata():
    from pobsync_runner.rsync import rsync_argv
    from tests.engine.test_rsync_argv import spec

    log = Path("/backups/web1/.2026-11-30T000000Z.transfer.log")
    argv = rsync_argv(spec(), Path("/backups/web1/x.partial"), transfer_log=log)
    assert f"--log-file={log}" in argv and "--debug=NSTR" in argv
    assert "--log-file-format=@pobsync|%i|%l|%C|%n" in argv
    for name in (".pobsync-snapshot.json", MANIFEST_FILE, f"{MANIFEST_FILE}.tmp"):
        assert f"--exclude=/{name}" in argv
    assert not any(a.startswith("--log-file") for a in rsync_argv(spec(), Path("/d")))


@pytest.mark.parametrize("chunk", [1 << 20, 100])
@pytest.mark.parametrize("seed", range(6))
def test_the_base_patched_by_bisection_equals_a_merge_line_by_line(
    tmp_path, seed, chunk, monkeypatch
):
    """carry_over's bisection over the base manifest: random bases (escaped names among
    them) and random sets of logged files, replaced and inserted anywhere, the runs
    between them copied in chunks of whole lines (small ones too)."""
    import random

    from pobsync_runner.manifest import ManifestWriter, open_manifest
    from pobsync_runner.manifest_build import _BaseLines, _patched

    monkeypatch.setattr(_BaseLines, "CHUNK", chunk)

    rng = random.Random(seed)
    names = {b"d%03d/f%05d" % (rng.randrange(50), rng.randrange(10**5)) for _ in range(400)}
    names |= {b"odd\\name", b"tab\there", b"zz\nnl", b"a"}
    base_paths = sorted(rng.sample(sorted(names), len(names) // 2))
    base = tmp_path / "base"
    base.mkdir()
    writer = ManifestWriter(base, "xxh128")
    for i, path in enumerate(base_paths):
        checksum = "-" if i % 7 == 0 else f"{i:032x}"
        writer.write(Entry(path, i, 10**18 + i, 1000 + i, checksum))
    writer.commit()
    staging = tmp_path / "new"
    changed = {}
    for path in rng.sample(sorted(names), rng.randrange(1, 40)):
        target = staging / os.fsdecode(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(b"x" * 5)
        changed[path] = (5, b"ab" * 16)
    expected = {e.path: e for e in read(base)}
    for path in changed:
        st = os.lstat(staging / os.fsdecode(path))
        expected[path] = Entry(path, 5, st.st_mtime_ns, st.st_ino, "ab" * 16)

    reader = open_manifest(base)
    try:
        assert _patched(staging, "xxh128", reader, changed, len(expected))
    finally:
        reader.close()

    assert read(staging) == [expected[p] for p in sorted(expected)]


HOSTILE_LINES = [
    b"-\t5\t0\t1\t../../etc/shadow\n",
    b"-\t5\t0\t1\t/etc/shadow\n",
    b"-\t9999999999999999999\t0\t1\tp/big\n",  # 19 digits, beyond 2**63
    b"zz\t5\t0\t1\tnot-hex\n",
    b"x" * 20000 + b"\n",
    b"\n",
    b"-\t1\t2\t3\tp/./x\n",
    b"-\t1\t2\t3\tp//x\n",
    b"-\t1\t2\t3\tp/x/\n",
    b"-\t1\t2\t3\tp/a\0b\n",
    b"-\t1\t2\t3\tp/..\n",
    b"garbage\t-\t1\t2\t3\tp/zz\n",  # a valid line's fields, after garbage
    b"-\t1\t2\t3\tp/0\n",  # out of order: sorts before every good path
]


@pytest.mark.parametrize("block", [7, 64, 1000, 16384, 1 << 20])
def test_blocks_read_in_one_pass_give_what_a_line_by_line_read_gives(tmp_path, block, monkeypatch):
    """Hostile lines scattered among good ones, and escapes and hidden names (which take
    the line-by-line way), across every block boundary: each good entry comes out once,
    each bad line is named by its number, whatever the block size."""
    import pobsync_runner.manifest as manifest

    lines, expected, problems = [], [], []
    for i in range(3000):
        if i % 97 == 13:
            bad = HOSTILE_LINES[(i // 97) % len(HOSTILE_LINES)]
            lines.append(bad)
            kind = "out of order or duplicate path" if bad.endswith(b"p/0\n") else None
            long = len(bad) > 16384
            kind = kind or ("longer than 16384 bytes" if long else "not a manifest entry")
            problems.append(f"line {len(lines) + 1}: {kind}")
            continue
        odd = [b"", b"/.hidden", b"\\name"][i % 3] if 1000 <= i < 1100 else b""
        raw = b"p/%05d%s" % (i, odd)
        entry = Entry(raw, i, i * 1000, i + 7, UNKNOWN if i % 5 else f"{i:032x}")
        lines.append(entry.line())
        expected.append(entry)
    (tmp_path / MANIFEST_FILE).write_bytes(
        b"pobsync-manifest 1 xxh128\n" + b"".join(lines) + b"end %d\n" % len(expected)
    )
    monkeypatch.setattr(manifest, "BLOCK", block)
    one_pass = []

    class Rows:  # counts the blocks parsed in one pass
        def findall(self, data):
            one_pass.append(data)
            return manifest._ROWS_PATTERN.findall(data)

    monkeypatch.setattr(manifest, "_ROWS_PATTERN", manifest._ROWS, raising=False)
    monkeypatch.setattr(manifest, "_ROWS", Rows())
    reader = open_manifest(tmp_path)
    try:
        got = list(reader)
    finally:
        reader.close()
    assert got == expected
    # Clean blocks took the one-pass way; one block of the whole file holds a bad line.
    assert bool(one_pass) == (block < 1 << 20)
    assert reader.complete and reader.problems[: len(problems)] == problems[:20]
    assert reader.problem_count == len(problems)


@pytest.mark.parametrize(
    "tail,problem",
    [
        (b"end 1", "truncated after 1 entries (no trailer)"),
        (b"end 1\nmore\n", "line 3: data after the trailer"),
        (b"end 1\n" * 300_000, "line 3: data after the trailer"),
        (b"end 2\n", "line 3: trailer does not match the entry count"),
        (b"-\t1\t2\t3\tq" + b"y" * (3 << 20), "line 3: longer than 16384 bytes"),
    ],
)
def test_a_bad_end_is_one_clear_problem(tmp_path, tail, problem):
    good = Entry(b"p/a", 1, 2, 3, UNKNOWN).line()
    (tmp_path / MANIFEST_FILE).write_bytes(b"pobsync-manifest 1 xxh128\n" + good + tail)
    reader = open_manifest(tmp_path)
    try:
        assert [e.path for e in reader] == [b"p/a"]
    finally:
        reader.close()
    assert problem in reader.problems


def test_the_existing_objects_are_frozen_only_while_manifest_work_runs(tmp_path):
    import gc

    from pobsync_runner.integrity import Target, verify
    from pobsync_runner.manifest import existing_objects_frozen

    assert gc.get_freeze_count() == 0
    with existing_objects_frozen():
        assert gc.get_freeze_count() > 0 and gc.isenabled()
    assert gc.get_freeze_count() == 0
    with pytest.raises(RuntimeError), existing_objects_frozen():
        raise RuntimeError
    assert gc.get_freeze_count() == 0
    gc.freeze()  # a process that froze its objects itself keeps them frozen
    try:
        frozen = gc.get_freeze_count()
        made_since = [[] for _ in range(10_000)]  # tracked objects the freeze did not take
        with existing_objects_frozen():
            inside = gc.get_freeze_count()
        after = gc.get_freeze_count()
        # Not exact counts: a frozen object that dies (a frame, a cache entry) leaves the
        # permanent generation, so the count may drop by a few. Unfrozen would be 0;
        # frozen again would add the 10,000 lists.
        for count in (inside, after):
            assert frozen - 1000 < count < frozen + len(made_since) // 2, (frozen, count)
    finally:
        gc.unfreeze()
    seen = []
    import pobsync_runner.integrity as integrity

    real = integrity.hash_file

    def spy(*args):
        seen.append(gc.get_freeze_count())
        return real(*args)

    integrity.hash_file = spy
    try:
        (tmp_path / "f").write_bytes(b"x")
        report = verify([Target("s", tmp_path)])
    finally:
        integrity.hash_file = real
    assert report.files_read == 1 and seen and seen[0] > 0
    assert gc.get_freeze_count() == 0 and gc.isenabled()


def _reference_log(data: bytes) -> tuple[str | None, list[tuple[bytes, ...]], bool]:
    """rsync's log read line by line, the plain way: (first algorithm, items, damaged)."""
    import io
    import re

    item = re.compile(rb"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d \[\d+\] @pobsync\|")
    algo = re.compile(rb"\[\d+\] (?:Client|Server) (?:negotiated )?checksum: ([a-z0-9]+)\s*$")
    algorithm, items, damaged = None, [], False
    for line in io.BytesIO(data):  # lines end at \n only, as in a file
        if not item.match(line):
            m = algo.search(line)
            if m and algorithm is None:
                algorithm = m.group(1).decode()
            continue
        parts = line[line.index(b"@pobsync|") + 9 :].rstrip(b"\n").split(b"|", 3)
        if len(parts) == 4:
            items.append(tuple(parts))
        else:
            damaged = True
    return algorithm, items, damaged


@pytest.mark.parametrize("block", [7, 100, 1 << 20])
@pytest.mark.parametrize("seed", range(8))
def test_the_log_read_in_blocks_is_the_log_read_line_by_line(tmp_path, seed, block, monkeypatch):
    """rsync's log parsed a block at a time (regular expressions over whole lines) gives
    the items and the algorithm a line-by-line reading gives, whatever the block size;
    a damaged item line is seen, and a name that holds the marker counts as damage
    (carry_over then leaves the manifest to the walk); a name that reads like the
    algorithm's line never sets the algorithm."""
    import random

    import pobsync_runner.transfer_log as build

    monkeypatch.setattr(build, "LOG_BLOCK", block)
    rng = random.Random(seed)
    stamp = b"2026/12/01 05:36:31 [%d] "
    odd = [
        b"plain",
        b"with|bars|in|it",
        b"esc\\#011aped",
        b"x [9] Client negotiated checksum: md5",
        b"\xff\xfe",
        b"trailing \r",
    ]
    lines = []
    if rng.random() < 0.8:
        lines.append(
            stamp % 1 + b"Client negotiated checksum: %s\n" % rng.choice([b"xxh128", b"md5"])
        )
    for i in range(rng.randrange(1, 60)):
        kind = rng.random()
        name = b"d%d/%s%d" % (i % 3, rng.choice(odd), i)
        if kind < 0.8:
            flags = rng.choice([b">f+++++++++", b"cf......", b"cd+++++++++", b">f.st......"])
            lines.append(stamp % 2 + b"@pobsync|%s|%d|%032x|%s\n" % (flags, i, i, name))
        elif kind < 0.9:
            lines.append(stamp % 2 + b"rsync: [receiver] something about %s\n" % name)
        elif kind < 0.95 and seed % 2:
            lines.append(stamp % 2 + b"@pobsync|>f+++|%d\n" % i)  # damaged
        elif seed % 4 == 3:
            lines.append(stamp % 2 + b"@pobsync|>f+++|1|%032x|n] @pobsync|x\n" % i)
    data = b"".join(lines)
    if rng.random() < 0.3 and data:
        data = data[:-1]  # the last line unterminated
    log = tmp_path / "t.log"
    log.write_bytes(data)

    algorithm, items, damaged = _reference_log(data)
    damaged = damaged or data.count(b"] @pobsync|") != len(items)
    blocks = list(build.log_blocks(log))
    assert [i for _, got, _ in blocks for i in got] == items
    assert next((a for a, _, _ in blocks if a), None) == algorithm
    assert any(d for _, _, d in blocks) == damaged
    logged = build.logged_files([(log, b"p/")], 10**6)
    if damaged:
        assert logged is None
    else:
        assert logged is not None
        files = [i for i in items if i[0][1:2] == b"f"]
        assert logged[1] == algorithm
        assert sorted(logged[0]) == sorted(b"p/" + build.unescape_rsync(i[3]) for i in files)
