"""The per-snapshot manifest: every regular file's size, mtime, inode and checksum.

File `<snapshot>/.pobsync-manifest`, beside `.pobsync-snapshot.json` (docs/engine.md):

    pobsync-manifest 1 xxh128
    <checksum or ->\t<size>\t<mtime_ns>\t<inode>\t<path>
    ...
    end <number of entries>

Paths are relative to the snapshot, raw bytes with only `\\`, tab, newline and CR
escaped (`\\\\`, `\\t`, `\\n`, `\\r`), and the lines are sorted by the raw path bytes, so
two manifests (or a manifest and a directory walk) merge in one streaming pass with flat
memory whatever the file count. `-` is a checksum not known yet (the first verification
fills it in). The trailer tells a complete file from a truncated one.

Where the checksums come from, at no extra read: rsync writes one line per transferred
file to its --log-file with `%C`, the whole-file checksum it computed while receiving
(the receiver writes that log in a pull; xxh128 when both sides negotiate it, md5 with an
older peer; the negotiated name is in the same log through --debug=NSTR). Files rsync did
not transfer are hard links into the base snapshot: same inode, so the base manifest's
checksum is theirs. Everything else (a seeded run's leftovers, an algorithm we cannot
compute, a name rsync's log escaping made ambiguous) is `-`.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from pathlib import Path
from typing import BinaryIO

import xxhash

MANIFEST_FILE = ".pobsync-manifest"
MANIFEST_TMP = f"{MANIFEST_FILE}.tmp"
FORMAT = 1
UNKNOWN = "-"
MAX_LINE = 16384  # a path is at most 4096 bytes; anything longer is not ours
ALGORITHMS: dict[str, Callable[[], object]] = {"xxh128": xxhash.xxh3_128, "md5": hashlib.md5}
DEFAULT_ALGORITHM = "xxh128"
_HEX = re.compile(rb"^[0-9a-f]{8,128}$")
_ENTRY_LINE = re.compile(
    rb"(-|[0-9a-f]{8,128})\t([0-9]{1,19})\t([0-9]{1,20})\t([0-9]{1,20})\t([^\t\n]*)\Z"
)

# rsync's log line: "2026/11/30 02:55:01 [16890] " then our format.
LOG_FORMAT = "@pobsync|%i|%l|%C|%n"
_LOG_LINE = re.compile(rb"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d \[\d+\] @pobsync\|")
_LOG_ALGO = re.compile(rb"\[\d+\] (?:Client|Server) (?:negotiated )?checksum: ([a-z0-9]+)\s*$")
_RSYNC_ESCAPE = re.compile(rb"\\#([0-7]{3})")

_ESCAPES = {b"\\": b"\\\\", b"\t": b"\\t", b"\n": b"\\n", b"\r": b"\\r"}
_ESCAPE_RE = re.compile(rb"[\\\t\n\r]")
_UNESCAPES = {v[1:2]: k for k, v in _ESCAPES.items()}
_UNESCAPE_RE = re.compile(rb"\\(.)", re.DOTALL)


def escape_path(raw: bytes) -> bytes:
    return _ESCAPE_RE.sub(lambda m: _ESCAPES[m.group()], raw)


def unescape_path(text: bytes) -> bytes:
    def one(m: re.Match[bytes]) -> bytes:
        if m.group(1) not in _UNESCAPES:
            raise ValueError("bad escape")
        return _UNESCAPES[m.group(1)]

    if text.endswith(b"\\") and not text.endswith(b"\\\\"):
        raise ValueError("bad escape")
    return _UNESCAPE_RE.sub(one, text)


def display_path(raw: bytes) -> str:
    """A path for one line of human output: control characters and bad UTF-8 escaped."""
    text = raw.decode("utf-8", errors="backslashreplace")
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def safe_relative(raw: bytes) -> bool:
    """A manifest path we may join to a snapshot: relative, no `..`, `.`, empty parts, NUL."""
    if not raw or b"\0" in raw or len(raw) > 4096:
        return False
    framed = b"/" + raw + b"/"
    return b"//" not in framed and b"/./" not in framed and b"/../" not in framed


def new_hasher(algorithm: str):  # -> hashlib-like object
    return ALGORITHMS[algorithm]()


@dataclass(frozen=True, slots=True)
class Entry:
    path: bytes
    size: int
    mtime_ns: int
    inode: int
    checksum: str  # lowercase hex, or UNKNOWN

    def line(self) -> bytes:
        return b"%s\t%d\t%d\t%d\t%s\n" % (
            self.checksum.encode(),
            self.size,
            self.mtime_ns,
            self.inode,
            escape_path(self.path),
        )


class ManifestError(Exception):
    """The manifest cannot be read at all (missing, unreadable, not a manifest)."""


class ManifestWriter:
    """Streams entries (in path order) to `<dir>/.pobsync-manifest.tmp`; commit() renames."""

    def __init__(self, snapshot_dir: Path, algorithm: str) -> None:
        self.dir = snapshot_dir
        self.algorithm = algorithm
        self.count = 0
        self.known = 0
        self._last: bytes | None = None
        self._tmp = snapshot_dir / MANIFEST_TMP
        self._fh: BinaryIO = open(self._tmp, "wb", buffering=1 << 20)  # noqa: SIM115
        self._fh.write(b"pobsync-manifest %d %s\n" % (FORMAT, algorithm.encode()))

    def write(self, entry: Entry) -> None:
        if self._last is not None and entry.path <= self._last:
            raise ValueError("manifest entries must come in increasing path order")
        self._last = entry.path
        self._fh.write(entry.line())
        self.count += 1
        self.known += entry.checksum != UNKNOWN

    def write_line(self, path: bytes, line: bytes, known: bool) -> None:
        """A line already in manifest form (carried over from the base manifest)."""
        if self._last is not None and path <= self._last:
            raise ValueError("manifest entries must come in increasing path order")
        self._last = path
        self._fh.write(line)
        self.count += 1
        self.known += known

    def commit(self) -> None:
        self._fh.write(b"end %d\n" % self.count)
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        os.replace(self._tmp, self.dir / MANIFEST_FILE)

    def abort(self) -> None:
        self._fh.close()
        try:
            self._tmp.unlink()
        except OSError:
            pass


@dataclass
class ManifestReader:
    """Entries of a manifest in path order. Hostile content never raises: bad lines are
    skipped and listed in `problems` (line number and what is wrong); a missing trailer
    is a problem too (`truncated`). Only an unopenable file or a bad header raise
    ManifestError, from open_manifest()."""

    fh: BinaryIO
    algorithm: str
    name: str = MANIFEST_FILE
    problems: list[str] = field(default_factory=list)
    problem_count: int = 0
    complete: bool = False
    entries: int = 0
    unknown: int = 0

    MAX_PROBLEMS = 20

    def _problem(self, text: str) -> None:
        self.problem_count += 1
        if len(self.problems) < self.MAX_PROBLEMS:
            self.problems.append(text)

    def __iter__(self) -> Iterator[Entry]:
        last: bytes | None = None
        lineno = 1
        while True:
            line = self.fh.readline(MAX_LINE)
            if not line:
                break
            lineno += 1
            if not line.endswith(b"\n"):
                if len(line) == MAX_LINE:
                    while (rest := self.fh.readline(MAX_LINE)) and not rest.endswith(b"\n"):
                        pass
                    self._problem(f"line {lineno}: longer than {MAX_LINE} bytes")
                    continue
                break  # a cut last line: reported as truncated below
            if line.startswith(b"end "):
                if line[4:-1] == b"%d" % self.entries:
                    self.complete = True
                else:
                    self._problem(f"line {lineno}: trailer does not match the entry count")
                if self.fh.readline(1):
                    self._problem(f"line {lineno}: data after the trailer")
                break
            entry = self._parse(line[:-1])
            if entry is None:
                self._problem(f"line {lineno}: not a manifest entry")
                continue
            if last is not None and entry.path <= last:
                self._problem(f"line {lineno}: out of order or duplicate path")
                continue
            last = entry.path
            self.entries += 1
            self.unknown += entry.checksum == UNKNOWN
            yield entry
        if not self.complete:
            self._problem(f"truncated after {self.entries} entries (no trailer)")

    @staticmethod
    def _parse(line: bytes) -> Entry | None:
        """One line (without its newline) checked in one regular-expression match."""
        m = _ENTRY_LINE.match(line)
        if m is None:
            return None
        checksum, size, mtime, inode, raw = m.groups()
        if len(size) == 19 and int(size) >= 1 << 63:  # beyond what any filesystem stores
            return None
        if b"\\" in raw:
            try:
                raw = unescape_path(raw)
            except ValueError:
                return None
        if not safe_relative(raw):
            return None
        return Entry(raw, int(size), int(mtime), int(inode), checksum.decode())

    def close(self) -> None:
        self.fh.close()


def open_manifest(snapshot_dir: Path) -> ManifestReader:
    path = snapshot_dir / MANIFEST_FILE
    try:
        fh = open(path, "rb", buffering=1 << 20)  # noqa: SIM115
    except FileNotFoundError:
        raise ManifestError("no manifest") from None
    except OSError as exc:
        raise ManifestError(f"manifest unreadable: {exc.strerror}") from None
    header = fh.readline(256).split()
    if (
        len(header) != 3
        or header[0] != b"pobsync-manifest"
        or header[1] != b"%d" % FORMAT
        or header[2].decode("ascii", "replace") not in ALGORITHMS
    ):
        fh.close()
        raise ManifestError("manifest header is damaged or from an unknown version")
    return ManifestReader(fh, header[2].decode())


def read_header(snapshot_dir: Path) -> str | None:
    """The manifest's algorithm, or None when there is no readable manifest."""
    try:
        reader = open_manifest(snapshot_dir)
    except ManifestError:
        return None
    reader.close()
    return reader.algorithm


# -- walking a snapshot ----------------------------------------------------------------

METADATA_PREFIX = b".pobsync-"


def walk_files(
    root: Path, on_error: Callable[[bytes, OSError], None] | None = None
) -> Iterator[tuple[bytes, os.stat_result]]:
    """(relative raw path, lstat) of every regular file under `root`, in raw byte order."""
    for path, entry in walk_entries(root, on_error):
        try:
            yield path, entry.stat(follow_symlinks=False)
        except OSError as exc:
            if on_error is not None:
                on_error(path, exc)


def walk_entries(
    root: Path, on_error: Callable[[bytes, OSError], None] | None = None
) -> Iterator[tuple[bytes, os.DirEntry[bytes]]]:
    """(relative raw path, directory entry) of every regular file under `root`, in raw
    byte order; no stat() unless the caller asks the entry (d_type and d_ino are free).

    Never follows a symlink. The snapshot's own metadata files at its top are skipped.
    Sorting each directory by name plus "/" for subdirectories yields exactly the byte
    order of the full paths ("a-b" < "a/x" < "a0").
    """
    stack: list[Iterator[tuple[bytes, bytes, bool, os.DirEntry[bytes]]]] = []

    def listing(path: bytes, prefix: bytes, top: bool):
        items = []
        try:
            with os.scandir(path) as it:
                for entry in it:
                    if top and entry.name.startswith(METADATA_PREFIX):
                        continue
                    is_dir = entry.is_dir(follow_symlinks=False)
                    items.append(
                        (entry.name + b"/" if is_dir else entry.name, prefix, is_dir, entry)
                    )
        except OSError as exc:
            if on_error is not None:
                on_error(prefix, exc)
        items.sort(key=itemgetter(0))
        return iter(items)

    stack.append(listing(os.fsencode(root), b"", True))
    while stack:
        item = next(stack[-1], None)
        if item is None:
            stack.pop()
            continue
        key, prefix, is_dir, entry = item
        if is_dir:
            stack.append(listing(entry.path, prefix + key, False))
            continue
        try:
            regular = entry.is_file(follow_symlinks=False)
        except OSError as exc:
            if on_error is not None:
                on_error(prefix + entry.name, exc)
            continue
        if regular:
            yield prefix + entry.name, entry


# -- rsync's transfer log ---------------------------------------------------------------


def transfer_log_args(log_path: Path) -> list[str]:
    """rsync options that make it write each transferred file's checksum to `log_path`."""
    return [f"--log-file={log_path}", f"--log-file-format={LOG_FORMAT}", "--debug=NSTR"]


@dataclass
class TransferLog:
    algorithm: str | None  # what rsync negotiated, if it said
    records: int  # transferred regular files with a checksum
    sorted_path: Path | None  # "<hex path>\t<size>\t<checksum>" lines in path order


def _unescape_rsync(name: bytes) -> bytes:
    return _RSYNC_ESCAPE.sub(lambda m: bytes([int(m.group(1), 8) & 0xFF]), name)


def read_transfer_log(log_path: Path, prefix: bytes, workdir: Path) -> TransferLog:
    """Extract the transferred files' checksums into a file sorted by raw path.

    The key is the raw path in hex, which sorts like the raw bytes; `sort` (C locale,
    spilling to disk) keeps this process's memory flat for a full backup of any size.
    """
    algorithm: str | None = None
    records = 0
    fd, unsorted = tempfile.mkstemp(prefix="transfer.", dir=workdir)
    with open(log_path, "rb") as src, os.fdopen(fd, "wb", buffering=1 << 20) as out:
        for line in src:
            if not _LOG_LINE.match(line):
                m = _LOG_ALGO.search(line)
                if m and algorithm is None:
                    algorithm = m.group(1).decode()
                continue
            parts = line[line.index(b"@pobsync|") + 9 :].rstrip(b"\n").split(b"|", 3)
            if len(parts) != 4:
                continue
            iflags, size, checksum, name = parts
            checksum = checksum.strip()
            if not iflags.startswith(b">f") or not _HEX.match(checksum) or not size.isdigit():
                continue
            raw = prefix + _unescape_rsync(name)
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
    import heapq

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


def transfer_log_path(host_dir: Path, name: str) -> Path:
    """Beside the snapshot, not in it: a seeded run's --delete-excluded would delete it."""
    return host_dir / f".{name}.transfer.log"


def write_snapshot_manifest(staging: Path, base, transfer_log: Path) -> str:  # base: record
    """The backup's step before the commit point. Returns "" or a note for the run: a
    manifest that cannot be written never fails the backup (verify builds it later)."""
    logs = [(transfer_log, b"")] if transfer_log.exists() else []
    try:
        build_manifest(
            staging, transfer_logs=logs, base_dir=Path(base.path) if base is not None else None
        )
    except (OSError, ValueError, subprocess.CalledProcessError) as exc:
        return f"manifest not written ({exc}); the first verification builds it"
    return ""
