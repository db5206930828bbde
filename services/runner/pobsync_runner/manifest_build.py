"""A new snapshot's manifest, built after rsync exits from what rsync already computed.

rsync writes one line per transferred file to its --log-file with `%C`, the whole-file
checksum it computed while receiving (the receiver writes that log in a pull; xxh128
when both sides negotiate it, md5 with an older peer; the negotiated name is in the same
log through --debug=NSTR). Files rsync did not transfer are hard links into the base
snapshot: same inode, so the base manifest's line is theirs. One walk of the new
snapshot, the log (sorted on disk) and the base manifest merge in path order, so memory
stays flat in file count. A full backup's log is read while rsync runs
(pobsync_runner.transfer_log.LogFollower), so its files are stat()ed beside rsync. The format
itself is pobsync_runner.manifest.
"""

from __future__ import annotations

import heapq
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from pobsync_runner.dumps import DUMPS_DIR
from pobsync_runner.manifest import (
    _HEX,
    ALGORITHMS,
    DEFAULT_ALGORITHM,
    MANIFEST_FILE,
    MANIFEST_TMP,
    UNKNOWN,
    Entry,
    ManifestError,
    ManifestReader,
    ManifestWriter,
    existing_objects_frozen,
    line_of,
    open_manifest,
    unescape_path,
    walk_entries,
)
from pobsync_runner.safe_read import DirCursor
from pobsync_runner.transfer_log import (
    UNKNOWN_BYTES,
    UNSTATED,
    LogFollower,
    Logged,
    log_blocks,
    logged_files,
    regular_stat,
    unescape_rsync,
)

# -- rsync's transfer log ---------------------------------------------------------------


@dataclass
class TransferLog:
    algorithm: str | None  # what rsync negotiated, if it said
    records: int  # transferred regular files with a checksum
    sorted_path: Path | None  # "<hex path>\t<size>\t<checksum>" lines in path order


def read_transfer_log(log_path: Path, prefix: bytes, workdir: Path) -> TransferLog:
    """Extract the transferred files' checksums into a file sorted by raw path.

    The key is the raw path in hex, which sorts like the raw bytes; `sort` (C locale,
    spilling to disk) keeps this process's memory flat for a full backup of any size.
    """
    algorithm: str | None = None
    records = 0
    fd, unsorted = tempfile.mkstemp(prefix="transfer.", dir=workdir)
    with os.fdopen(fd, "wb", buffering=1 << 20) as out:
        for named, items, _damaged in log_blocks(log_path):  # a damaged line: no record
            algorithm = algorithm or named
            for iflags, size, checksum, name in items:
                checksum = checksum.strip()
                if not iflags.startswith(b">f") or not _HEX.match(checksum) or not size.isdigit():
                    continue
                raw = prefix + unescape_rsync(name)
                out.write(b"%s\t%s\t%s\n" % (raw.hex().encode(), size, checksum))
                records += 1
    if records == 0:
        os.unlink(unsorted)
        return TransferLog(algorithm, 0, None)
    sorted_path = Path(unsorted + ".sorted")
    subprocess.run(
        ["sort", "-S", "32M", "-T", str(workdir), "-o", str(sorted_path), unsorted],
        check=True,
        env={**os.environ, "LC_ALL": "C"},
        stdin=subprocess.DEVNULL,
    )
    os.unlink(unsorted)
    return TransferLog(algorithm, records, sorted_path)


def _sorted_records(path: Path | None) -> Iterator[tuple[bytes, int, str]]:
    """(raw path, size, checksum) from a sorted transfer file; a path listed twice (rsync's
    log escaping is ambiguous for names containing `\\#ddd`) is dropped entirely."""
    if path is None:
        return
    held: tuple[bytes, int, str] | None = None
    dropped: bytes | None = None
    with open(path, "rb") as fh:
        for line in fh:
            key, size, checksum = line.rstrip(b"\n").split(b"\t")
            raw = bytes.fromhex(key.decode())
            if held is not None and held[0] == raw:
                held, dropped = None, raw
                continue
            if raw == dropped:
                continue
            if held is not None:
                yield held
            held = (raw, int(size), checksum.decode())
    if held is not None:
        yield held


# -- building a new snapshot's manifest -------------------------------------------------


@dataclass
class BuildResult:
    algorithm: str
    entries: int
    known: int  # entries with a checksum


def build_manifest(
    snapshot_dir: Path,
    *,
    transfer_logs: Sequence[tuple[Path, bytes]],
    base_dir: Path | None,
) -> BuildResult:
    """Write `snapshot_dir`'s manifest from one walk of it, rsync's transfer log(s) and
    the base snapshot's manifest, merged in path order (memory flat in file count).

    `transfer_logs`: (log file, path prefix of its names inside the snapshot) pairs.
    A walked file takes the transfer log's checksum when the sizes agree, else the base
    manifest's when the base entry is the same inode (a hard link rsync made), else `-`.
    """
    workdir = Path(tempfile.mkdtemp(prefix=".pobsync-manifest-", dir=snapshot_dir.parent))
    base = None
    try:
        logs = [read_transfer_log(path, prefix, workdir) for path, prefix in transfer_logs]
        negotiated = next((log.algorithm for log in logs if log.algorithm), None)
        if base_dir is not None:
            try:
                base = open_manifest(base_dir)
            except ManifestError:
                base = None
        if negotiated in ALGORITHMS:
            algorithm, use_log = negotiated, True
        else:  # rsync did not say, or we cannot compute it: its checksums are unusable
            algorithm = base.algorithm if base is not None else DEFAULT_ALGORITHM
            use_log = False
        transferred = _merged(logs) if use_log else iter(())
        same = base is not None and base.algorithm == algorithm
        carried = _base_lines(base) if same else iter(())
        writer = ManifestWriter(snapshot_dir, algorithm)
        try:
            _merge(walk_entries(snapshot_dir), transferred, carried, writer)
            writer.commit()
        except BaseException:
            writer.abort()
            raise
        return BuildResult(algorithm, writer.count, writer.known)
    finally:
        if base is not None:
            base.close()
        for child in workdir.iterdir():
            child.unlink()
        workdir.rmdir()


def _merged(logs: list[TransferLog]) -> Iterator[tuple[bytes, int, str]]:
    return heapq.merge(*(_sorted_records(log.sorted_path) for log in logs))


def _base_lines(reader: ManifestReader) -> Iterator[tuple[bytes, int, bytes, bool]]:
    """(raw path, inode, line, has checksum) of the base manifest, parsed only as far as
    the merge needs (this runs once per file of every backup). A carried line is copied
    as it is, so a damaged one shows up when the new snapshot is verified."""
    for line in reader.fh:
        parts = line.split(b"\t", 4)
        if len(parts) != 5 or not line.endswith(b"\n"):
            continue
        try:
            inode = int(parts[3])
        except ValueError:
            continue
        raw = parts[4][:-1]
        if b"\\" in raw:
            try:
                raw = unescape_path(raw)
            except ValueError:
                continue
        yield raw, inode, line, parts[0] != b"-"


def _merge(
    walked: Iterator[tuple[bytes, os.DirEntry[bytes]]],
    transferred: Iterator[tuple[bytes, int, str]],
    carried: Iterator[tuple[bytes, int, bytes, bool]],
    writer: ManifestWriter,
) -> None:
    t = next(transferred, None)
    c = next(carried, None)
    for path, entry in walked:
        while t is not None and t[0] < path:
            t = next(transferred, None)
        while c is not None and c[0] < path:
            c = next(carried, None)
        if t is None or t[0] != path:
            # A hard link rsync made into the base: the same inode, so the base's line
            # (size, mtime, checksum) is this file's, with no stat() at all.
            if c is not None and c[0] == path and c[1] == entry.inode():
                writer.write_line(path, c[2], c[3])
                continue
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue  # vanished since the walk listed it
        checksum = UNKNOWN
        if t is not None and t[0] == path and t[1] == st.st_size:
            checksum = t[2]
        writer.write(Entry(path, st.st_size, st.st_mtime_ns, st.st_ino, checksum))


def write_snapshot_manifest(
    staging: Path,
    base,
    transfer_logs: Sequence[tuple[Path, bytes]],
    *,
    regular_files: int | None = None,
    follower: LogFollower | None = None,
) -> str:  # base: record
    """The backup's step before the commit point. Returns "" or a note for the run: a
    manifest that cannot be written never fails the backup (verify builds it later).

    transfer_logs: (rsync's log, the prefix of its names inside the snapshot) pairs.
    regular_files: rsync's count of regular files, given only when rsync exited 0 into a
    fresh staging directory with no option that skips listed files: then an incremental's
    manifest is the base's with the logged files' lines changed (carry_over), with no walk
    at all. follower: what followed a full backup's log while rsync ran (pull), whose
    work carry_over then need not do again."""
    logs = [(path, prefix) for path, prefix in transfer_logs if path.exists()]
    base_dir = Path(base.path) if base is not None else None
    try:
        with existing_objects_frozen():
            if regular_files is not None and logs:
                if carry_over(staging, base_dir, logs, regular_files, follower):
                    return ""
            build_manifest(staging, transfer_logs=logs, base_dir=base_dir)
    except (OSError, ValueError, subprocess.CalledProcessError) as exc:
        return f"manifest not written ({exc}); the first verification builds it"
    return ""


CARRY_MAX_CHANGED = 50_000  # logged files carry_over holds (about 12 MB); more: the walk


def carry_over(
    staging: Path,
    base_dir: Path | None,
    transfer_logs: Sequence[tuple[Path, bytes]],
    regular_files: int,
    follower: LogFollower | None = None,
) -> bool:
    """Write the new snapshot's manifest as the base's, with the lines of the files rsync
    logged replaced or added; False (nothing written) when that cannot be shown exact,
    and the manifest is built by the walk as usual.

    rsync logs every regular file it copied (received, or copied locally from the base
    when only its attributes differ); a file it hard-linked into the base is not logged,
    and is the base file at the same path (same inode, size, mtime: the same line). So
    the new snapshot's files are the base's unlogged ones plus the logged ones, and none
    of the base's is missing exactly when the count comes out at rsync's own regular-file
    count (a deleted file would make it one short, whatever else was added). No dump may
    have been added, the base manifest must be complete (its trailer) and of the
    algorithm rsync negotiated, and nothing unexpected may be logged (a hard link rsync
    made between two new files, with -H). With nothing logged the base's file is copied
    byte for byte; without a base (a full backup) every file was received and is logged.
    At most CARRY_MAX_CHANGED logged files are held in memory: beyond, the walk.

    `follower`, given for a full backup's one log: its files, algorithm and the stat()s
    it made while rsync ran stand in for reading the log again, from its spill on disk
    (no limit: memory stays flat in file count).
    """
    if (staging / DUMPS_DIR).exists():
        return False
    if follower is not None and base_dir is None and len(transfer_logs) == 1:
        followed = follower.followed()
        if followed is None or followed.algorithm not in ALGORITHMS:
            return False
        return _followed(staging, followed.algorithm, followed, regular_files)
    logged = logged_files(transfer_logs, CARRY_MAX_CHANGED)
    if logged is None or logged[1] not in ALGORITHMS:
        return False
    changed, algorithm = logged
    if base_dir is None:  # a full backup: every file was received, so logged
        return _patched(staging, algorithm, None, changed, regular_files)
    try:
        reader = open_manifest(base_dir)
    except ManifestError:
        return False
    try:
        base_count = _trailer_count(reader.fh)
        if reader.algorithm != algorithm or base_count is None:
            return False
        reader.fh.seek(0)
        if not changed:
            return base_count == regular_files and _copy_manifest(reader, staging)
        return _patched(staging, algorithm, reader, changed, regular_files)
    finally:
        reader.close()


def _copy_manifest(reader: ManifestReader, staging: Path) -> bool:
    copy_tmp = staging / MANIFEST_TMP
    try:
        with open(copy_tmp, "wb") as out:
            shutil.copyfileobj(reader.fh, out, 1 << 20)
            out.flush()
            os.fsync(out.fileno())
        os.replace(copy_tmp, staging / MANIFEST_FILE)
    except BaseException:
        copy_tmp.unlink(missing_ok=True)
        raise
    return True


def _patched(
    staging: Path,
    algorithm: str,
    base: ManifestReader | None,
    changed: Logged,
    regular_files: int,
) -> bool:
    """The base's lines in order, each logged file's own line in its place (stat()ed: it
    is a new inode), the logged files the base lacks inserted; kept only when the count
    is rsync's. The base manifest is not read line by line: each logged path's place is
    found by bisection and the lines between are copied as they are, so a nightly run
    that changed a few files costs their number, not the snapshot's. The logged files'
    lines go out in runs (a full backup's are all one run), with no object per file."""
    lines = _BaseLines(base) if base is not None else None
    run: list[bytes] = []
    first = prev = b""  # the run's first and last paths
    with closing(DirCursor(staging)) as cursor:
        writer = ManifestWriter(staging, algorithm)
        try:
            for path in sorted(changed):
                if lines is not None:
                    if run:
                        writer.write_lines(run, first, prev)
                        run = []
                    if not lines.copy_until(path, writer):
                        writer.abort()
                        return False
                line = _line_now(cursor, path, changed[path])
                if line is None:
                    writer.abort()
                    return False
                if not run:
                    first = path
                run.append(line)
                prev = path
                if len(run) >= _RUN_LINES:
                    writer.write_lines(run, first, prev)
                    run = []
            if run:
                writer.write_lines(run, first, prev)
            if lines is not None:
                lines.copy_rest(writer)
            return _committed(writer, regular_files)
        except BaseException:
            writer.abort()
            raise


def _committed(writer: ManifestWriter, regular_files: int) -> bool:
    """Commit the manifest when its count is rsync's count of regular files; else drop
    it (False)."""
    if writer.count != regular_files:
        writer.abort()
        return False
    writer.commit()
    return True


_RUN_LINES = 4096


class _BaseLines:
    """A complete base manifest's entry lines, read with pread in small windows (no
    mapping, no whole-file buffer: memory stays flat in its size) and copied in runs of
    whole lines."""

    WINDOW = 1 << 16  # longer than any line (a path is at most 4,096 bytes, 8,192 escaped)
    CHUNK = 1 << 20

    def __init__(self, reader: ManifestReader) -> None:
        self.fd = reader.fh.fileno()
        size = os.fstat(self.fd).st_size
        self.pos = os.pread(self.fd, self.WINDOW, 0).index(b"\n") + 1  # after the header
        tail_at = max(0, size - 64)
        self.end = tail_at + os.pread(self.fd, 64, tail_at).rindex(b"\nend ") + 1  # trailer

    def _line_start(self, pos: int) -> int:
        """The first line start at or after `pos` (a line start or inside a line)."""
        if pos <= self.pos:
            return self.pos
        window = os.pread(self.fd, self.WINDOW, pos - 1)
        at = window.find(b"\n")
        return pos + at if at >= 0 else self.end

    def _path(self, start: int) -> tuple[bytes | None, int]:
        """The raw path of the line at `start` (None if damaged) and the next line's start."""
        window = os.pread(self.fd, self.WINDOW, start)
        stop = window.find(b"\n")
        if stop < 0:
            return None, self.end
        fields = window[:stop].split(b"\t", 4)
        raw = fields[4] if len(fields) == 5 else None
        if raw is not None and b"\\" in raw:
            try:
                raw = unescape_path(raw)
            except ValueError:
                raw = None
        return raw, start + stop + 1

    def copy_until(self, path: bytes, writer: ManifestWriter) -> bool:
        """Copy the lines before `path`, and skip `path`'s own line if the base has one;
        False when a damaged line is in the way of the bisection."""
        lo, hi = self.pos, self.end
        while lo < hi:  # lines before lo sort before path; lines from hi on do not
            mid = self._line_start((lo + hi) // 2)
            if mid >= hi:
                mid = lo
            raw, after = self._path(mid)
            if raw is None:
                return False
            if raw < path:
                lo = after
            else:
                hi = mid
        self._copy(lo, writer)
        if lo < self.end:
            raw, after = self._path(lo)
            if raw == path:
                self.pos = after  # the logged file's own line replaces the base's
        return True

    def copy_rest(self, writer: ManifestWriter) -> None:
        self._copy(self.end, writer)

    def _copy(self, stop: int, writer: ManifestWriter) -> None:
        """Copy the lines from self.pos up to `stop` (a line start) in whole-line chunks."""
        while self.pos < stop:
            chunk = os.pread(self.fd, min(self.CHUNK, stop - self.pos), self.pos)
            if self.pos + len(chunk) < stop:
                chunk = chunk[: chunk.rindex(b"\n") + 1]
            last = None
            if self.pos + len(chunk) >= stop:  # the run's last line: the order check's
                last = self._path(self.pos + chunk.rfind(b"\n", 0, len(chunk) - 1) + 1)[0]
            writer.write_block(chunk, last)
            self.pos += len(chunk)


def _followed(staging: Path, algorithm: str, follower: LogFollower, regular_files: int) -> bool:
    """A full backup's manifest from what its follower spilled, in path order
    (LogFollower.sorted_blocks()). A line made at the file's stat() while rsync ran is
    that file's final line (LogFollower says why), so a block of them is written as it
    comes: no work per file here, after rsync. A file the follower could not stat() is
    stat()ed now. False (nothing written) when a path was logged twice (rsync's log
    escaping is ambiguous, or a file was received again: fewer lines than files
    logged), a file is not there as a regular file, or the count is not rsync's."""
    with closing(DirCursor(staging)) as cursor:
        writer = ManifestWriter(staging, algorithm)
        try:
            for block in follower.sorted_blocks():
                if not block.startswith(UNSTATED) and b"\n" + UNSTATED not in block:
                    writer.write_block(block, None)
                    continue
                lines = []
                for line in block.splitlines(keepends=True):
                    if line.startswith(UNSTATED):  # its logged size and checksum
                        size, checksum, escaped = line[len(UNSTATED) : -1].split(b"\t")
                        line = _line_now(cursor, unescape_path(escaped), (int(size), checksum))
                        if line is None:
                            writer.abort()
                            return False
                    lines.append(line)
                writer.write_block(b"".join(lines), None)
            if writer.count != follower.files:
                writer.abort()
                return False
            return _committed(writer, regular_files)
        except BaseException:
            writer.abort()
            raise


def _line_now(cursor: DirCursor, path: bytes, logged: tuple[int, bytes]) -> bytes | None:
    """The logged file's line from a stat() now (with the logged checksum only if the
    size is still the logged one); None when it is not there as a regular file."""
    seen = regular_stat(cursor, path)
    if seen is None:
        return None
    size, mtime_ns, inode = seen
    checksum = logged[1] if size == logged[0] else UNKNOWN_BYTES
    return line_of(checksum, size, mtime_ns, inode, path)


def _trailer_count(fh) -> int | None:
    """N of the manifest's last line `end N`, or None when it has none."""
    size = fh.seek(0, os.SEEK_END)
    fh.seek(max(0, size - 32))
    tail = fh.read()
    if not tail.endswith(b"\n"):
        return None
    last = tail[:-1].rpartition(b"\n")[2]
    count = last[4:]
    if not last.startswith(b"end ") or not count.isdigit():
        return None
    return int(count)
