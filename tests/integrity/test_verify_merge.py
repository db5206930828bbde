"""Verifying many snapshots by their manifests' lines side by side (integrity's
_merged_lines, what a whole host's verification runs) finds exactly what the merge by
parsed entries (_merged) finds, on random histories of hard-linked snapshots with
damaged files, damaged directories and damaged manifests. No server needed: the
snapshots are made here the way --link-dest makes them (a hard link per unchanged
file) and their manifests by the same writer the engine uses."""

from __future__ import annotations

import os
import random
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
import xxhash

import pobsync_runner.integrity as integrity
import pobsync_runner.listing_ahead as listing_ahead
import pobsync_runner.manifest as manifest
from pobsync_runner.integrity import Target, verify
from pobsync_runner.listing_ahead import NOT_READY, ListingsAhead
from pobsync_runner.manifest import MANIFEST_FILE, UNKNOWN, Entry, ManifestWriter, walk_files

# Directory names whose files do not sort together ("a-b" < "a/b/.." < "a0"), so the
# merge leaves a directory and comes back to it.
DIRS = ["", "a", "a-b", "a/b", "a/b/c", "a0", "z"]


def _write_manifest(snap: Path, rng: random.Random | None) -> None:
    """The snapshot's manifest; with `rng`, 3% of the checksums left unknown."""
    writer = ManifestWriter(snap, "xxh128")
    for path, st in walk_files(snap):
        data = (snap / os.fsdecode(path)).read_bytes()
        unknown = rng is not None and rng.random() < 0.03
        checksum = UNKNOWN if unknown else xxhash.xxh3_128_hexdigest(data)
        writer.write(Entry(path, st.st_size, st.st_mtime_ns, st.st_ino, checksum))
    writer.commit()


def _history(root: Path, rng: random.Random) -> list[Path]:
    """2 to 6 snapshots; each links most of the one before and changes, deletes and
    adds a few files."""
    snaps: list[Path] = []
    files = [f"{d}/f{i}".lstrip("/") for d in DIRS for i in range(rng.randint(1, 12))]
    for s in range(rng.randint(2, 6)):
        snap = root / f"2026-01-0{s + 1}T000000Z"
        snap.mkdir(parents=True)
        for name in files:
            (snap / name).parent.mkdir(parents=True, exist_ok=True)
            before = snaps[-1] / name if snaps else None
            if before is not None and before.exists() and rng.random() > 0.1:
                os.link(before, snap / name)
            elif before is None or rng.random() > 0.3:  # new content, new inode
                (snap / name).write_bytes(os.urandom(rng.randint(0, 3000)))
        _write_manifest(snap, rng)
        snaps.append(snap)
        files += [f"{rng.choice(DIRS)}/n{s}_{i}".lstrip("/") for i in range(rng.randint(0, 3))]
    return snaps


def _manifest_lines(snap: Path) -> list[bytes]:
    return (snap / MANIFEST_FILE).read_bytes().split(b"\n")


def _damage(snaps: list[Path], rng: random.Random) -> list[str]:
    """A few random kinds of damage, to files (shared inodes included) and manifests."""
    done = []
    outside = snaps[0].parent / "outside"
    outside.write_bytes(b"not in any snapshot")
    for _ in range(rng.randint(0, 5)):
        snap = rng.choice(snaps)
        # Regular files only: a symlink planted by an earlier damage must never lead
        # the flip below out of the tree.
        files = sorted(
            p for p in snap.rglob("*") if not p.is_symlink() and p.is_file() and p.name[0] != "."
        )
        lines = _manifest_lines(snap)
        kind = rng.choice(
            [
                "flip", "unlink", "dir", "symlink", "fifo", "rmtree", "garbage", "duplicate",
                "swap", "no trailer", "bad count", "unknown", "hostile", "drop line",
                "shared garbage", "device", "after the trailer",
            ]
        )  # fmt: skip
        if kind == "shared garbage":  # the same bad line first in all or some manifests
            for snap in snaps if rng.random() < 0.5 else rng.sample(snaps, 2):
                lines = _manifest_lines(snap)
                lines[1:1] = [b"-\t1\t2\t3\t/absolute"]
                (snap / MANIFEST_FILE).write_bytes(b"\n".join(lines))
            done.append(kind)
            continue
        body = lines[1:-2]  # header ... entries ... trailer, ""
        if kind == "device" and os.geteuid() != 0:
            kind = "fifo"  # only root makes device nodes
        if kind in ("flip", "unlink", "dir", "symlink", "fifo", "device") and files:
            target = rng.choice(files)
            if kind == "flip":  # same size and mtime, other bytes (every linked snapshot)
                data = bytearray(target.read_bytes() or b"\0")
                data[0] ^= 0xFF
                st = target.stat()
                fd = os.open(target, os.O_WRONLY | os.O_NOFOLLOW)
                try:
                    os.write(fd, bytes(data[:1]))
                finally:
                    os.close(fd)
                os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
            else:
                target.unlink()
                if kind == "dir":
                    target.mkdir()
                elif kind == "symlink":
                    target.symlink_to(outside)  # a real file beside the snapshots
                elif kind == "fifo":
                    os.mkfifo(target)
                elif kind == "device":  # /dev/null's numbers: never to be opened anyway
                    os.mknod(target, stat.S_IFCHR | 0o600, os.makedev(1, 3))
        elif kind == "rmtree" and (snap / "a/b").is_dir():
            shutil.rmtree(snap / "a/b")
        elif kind in ("garbage", "duplicate", "swap", "unknown", "hostile", "drop line") and body:
            i = rng.randrange(len(body))
            if kind == "garbage":
                body[i] = b"not\ta manifest line"
            elif kind == "duplicate":
                body.insert(i, body[i])
            elif kind == "swap" and i + 1 < len(body):
                body[i], body[i + 1] = body[i + 1], body[i]
            elif kind == "unknown":
                body[i] = b"-" + body[i][body[i].index(b"\t") :]
            elif kind == "hostile":
                body.insert(i, b"-\t1\t2\t3\ta/../../etc/passwd")
            elif kind == "drop line":
                del body[i]
            trailer = lines[-2] if kind in ("unknown", "swap") else b"end %d" % len(body)
            (snap / MANIFEST_FILE).write_bytes(b"\n".join([lines[0], *body, trailer, b""]))
        elif kind == "after the trailer":
            (snap / MANIFEST_FILE).write_bytes(b"\n".join([*lines[:-1], lines[1], b""]))
        elif kind == "no trailer":
            (snap / MANIFEST_FILE).write_bytes(b"\n".join([lines[0], *body, b""]))
        elif kind == "bad count":
            (snap / MANIFEST_FILE).write_bytes(b"\n".join([lines[0], *body, b"end 1", b""]))
        else:
            continue
        done.append(f"{kind} in {snap.name}")
    return done


def _view(report, inodes: bool = True) -> tuple:
    """Everything a verification reports, in the order it reports it (without the
    damaged inodes' numbers, for two copies of one tree)."""
    return (
        [(f.line(), f.raw_path, f.inode if inodes else None) for f in report.findings],
        report.problems,
        report.files_checked,
        report.files_read,
        report.bytes_read,
        {
            name: (r.entries, r.read, r.read_all, r.problems, r.problem_paths, r.manifest_note)
            for name, r in report.snapshots.items()
        },
    )


def _both(snaps: list[Path], monkeypatch, rng: random.Random) -> tuple[tuple, tuple]:
    """The reports by lines and by entries: all snapshots read in full or some sampled,
    manifests read in blocks of up to 1 MiB or a few lines (so that small ones come in
    several runs of lines too)."""
    sampled = rng.random() < 0.3
    targets = [Target(p.name, p, full=not sampled or rng.random() < 0.5) for p in snaps]
    options = {"complete_manifests": False, "sample": 0.5 if sampled else 1.0}
    monkeypatch.setattr(manifest, "BLOCK", rng.choice([1 << 20, 97, 1000]))
    seen = []
    real = integrity._merged_lines
    monkeypatch.setattr(integrity, "_merged_lines", lambda *a: seen.append(1) or real(*a))
    draws = rng.random()
    by_lines = verify(targets, rng=random.Random(draws), **options)
    monkeypatch.setattr(integrity, "_alike", lambda live: False)
    by_entries = verify(targets, rng=random.Random(draws), **options)
    monkeypatch.undo()
    assert seen == [1]  # the first run went by lines (the second could not)
    return _view(by_lines), _view(by_entries)


def child_first(monkeypatch) -> list[int]:
    """Every ListingsAhead waits for its child's last record before the verification
    goes on, so the child's comparisons are the ones used; the list returned counts the
    verifying process's own _differing_names calls."""
    real_init, real_differ = ListingsAhead.__init__, integrity._differing_names
    local: list[int] = []

    def init(self, cursors, snapshots, differ):
        real_init(self, cursors, snapshots, real_differ)
        os.set_blocking(self.fd, True)
        while self.fd is not None:
            self._read()

    monkeypatch.setattr(ListingsAhead, "__init__", init)
    monkeypatch.setattr(listing_ahead, "MAX_PENDING", 1 << 30)
    monkeypatch.setattr(
        integrity, "_differing_names", lambda *a: local.append(1) or real_differ(*a)
    )
    return local


@pytest.mark.parametrize("ahead", ["child", "never"])
@pytest.mark.parametrize("seed", range(40))
def test_verifying_by_lines_finds_what_the_merge_by_entries_finds(
    tmp_path, monkeypatch, seed, ahead
):
    # "child": the listings compared ahead in the child, all of them; "never": none.
    rng = random.Random(seed)
    snaps = _history(tmp_path, rng)
    damage = _damage(snaps, rng)
    if ahead == "child":
        local = child_first(monkeypatch)
    else:
        monkeypatch.setattr(ListingsAhead, "differing", lambda self, parent: NOT_READY)
    lines, entries = _both(snaps, monkeypatch, rng)
    assert lines == entries, damage
    if ahead == "child":
        assert local == [], damage  # the verification compared no listing itself


@pytest.mark.parametrize("seed", range(40, 50))
def test_manifests_completed_by_lines_equal_those_completed_by_entries(tmp_path, monkeypatch, seed):
    rng = random.Random(seed)
    snaps = _history(tmp_path / "one", rng)
    damage = _damage(snaps, rng)
    subprocess.run(["cp", "-a", str(tmp_path / "one"), str(tmp_path / "two")], check=True)
    twins = [tmp_path / "two" / p.name for p in snaps]
    by_lines = verify([Target(p.name, p) for p in snaps])
    monkeypatch.setattr(integrity, "_alike", lambda live: False)
    by_entries = verify([Target(p.name, p) for p in twins])
    assert _view(by_lines, inodes=False) == _view(by_entries, inodes=False), damage
    for snap, twin in zip(snaps, twins, strict=True):
        assert _manifest_lines(snap) == _manifest_lines(twin), (snap.name, damage)


def test_a_whole_host_reads_each_shared_inode_once_and_names_every_snapshot(tmp_path):
    """The usual case by lines: three snapshots that share every file but one."""
    first = tmp_path / "s1"
    (first / "d").mkdir(parents=True)
    for i in range(50):
        (first / f"d/f{i:02d}").write_bytes(os.urandom(100))
    _write_manifest(first, None)
    snaps = [first]
    for name in ("s2", "s3"):
        snap = tmp_path / name
        (snap / "d").mkdir(parents=True)
        for i in range(50):
            os.link(snaps[-1] / f"d/f{i:02d}", snap / f"d/f{i:02d}")
        snaps.append(snap)
    (snaps[2] / "d/f07").unlink()
    (snaps[2] / "d/f07").write_bytes(b"new in s3")
    for snap in snaps[1:]:
        _write_manifest(snap, None)
    shared = snaps[0] / "d/f31"
    data = bytearray(shared.read_bytes())
    data[5] ^= 1
    st = shared.stat()
    shared.write_bytes(bytes(data))
    os.utime(shared, ns=(st.st_atime_ns, st.st_mtime_ns))
    (snaps[1] / "d/f40").unlink()
    report = verify([Target(p.name, p) for p in snaps])
    assert [f.line() for f in report.findings] == [
        "CHANGED d/f31: content differs from the manifest (xxh128) (in s1, s2, s3)",
        "MISSING d/f40: no longer in the snapshot (in s2)",
    ]
    assert report.files_checked == 150
    assert report.files_read == 51  # 50 shared inodes once each, and s3's own f07
    assert {n: r.problems for n, r in report.snapshots.items()} == {"s1": 1, "s2": 2, "s3": 1}


@pytest.mark.parametrize("by", ["lines", "entries"])
@pytest.mark.parametrize("kind", ["device", "fifo"])
@pytest.mark.parametrize("where", ["s2", "all"])  # all: one node linked into each
def test_a_device_or_fifo_in_place_of_a_file_is_named_and_never_opened(
    tmp_path, monkeypatch, by, kind, where
):
    if kind == "device" and os.geteuid() != 0:
        pytest.skip("only root makes device nodes; the FIFO case runs everywhere")
    snaps = []
    for name in ("s1", "s2", "s3"):
        snap = tmp_path / name
        (snap / "d").mkdir(parents=True)
        for i in range(5):
            if snaps:
                os.link(snaps[-1] / f"d/f{i}", snap / f"d/f{i}")
            else:
                (snap / f"d/f{i}").write_bytes(os.urandom(64))
        _write_manifest(snap, None)
        snaps.append(snap)
    odd = snaps[1] / "d/f2"
    odd.unlink()
    if kind == "device":  # /dev/null's numbers
        os.mknod(odd, stat.S_IFCHR | 0o600, os.makedev(1, 3))
    else:
        os.mkfifo(odd)
    holders = ["s2"]
    if where == "all":  # the same node in every snapshot: their lines and listings agree
        for snap in (snaps[0], snaps[2]):
            (snap / "d/f2").unlink()
            os.link(odd, snap / "d/f2")
        holders = ["s1", "s2", "s3"]
    if by == "entries":
        monkeypatch.setattr(integrity, "_alike", lambda live: False)
    opened_odd = []
    real_open = os.open

    def spy(path, flags, mode=0o777, *, dir_fd=None):
        fd = real_open(path, flags, mode, dir_fd=dir_fd)
        if not flags & os.O_DIRECTORY and not stat.S_ISREG(os.fstat(fd).st_mode):
            opened_odd.append(path)
        return fd

    monkeypatch.setattr(os, "open", spy)
    report = verify([Target(p.name, p) for p in snaps])
    monkeypatch.undo()
    assert [f.line() for f in report.findings] == [
        f"CHANGED d/f2: no longer a regular file (in {name})" for name in holders
    ]
    assert opened_odd == []
    assert report.files_read == (4 if where == "all" else 5)
