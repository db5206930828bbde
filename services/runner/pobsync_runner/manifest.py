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

Where the checksums come from (rsync's own transfer checksums and the base manifest, at
no extra read) is pobsync_runner.manifest_build; `-` fills the gaps (a seeded run's
leftovers, an algorithm we cannot compute, a name rsync's log escaping made ambiguous).
"""

from __future__ import annotations

import gc
import hashlib
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from operator import itemgetter
from pathlib import Path
from typing import BinaryIO, NamedTuple

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


_ESCAPES = {b"\\": b"\\\\", b"\t": b"\\t", b"\n": b"\\n", b"\r": b"\\r"}
_ESCAPE_RE = re.compile(rb"[\\\t\n\r]")
_UNESCAPES = {v[1:2]: k for k, v in _ESCAPES.items()}
_UNESCAPE_RE = re.compile(rb"\\(.)", re.DOTALL)


@contextmanager
def existing_objects_frozen() -> Iterator[None]:
    """For the per-line work on manifests and rsync's log (verification, the manifest
    build): the objects that exist when it starts (Django's and all) are moved out of the
    cycle collector's reach (gc.freeze) until it ends. It makes a tuple or two per line,
    and blocks of parsed lines outlive a few collections; each collection of the oldest
    generation then walked the whole process: about 15% of a warm verification's time
    (docs/performance.md). The collector stays on, so cycles made meanwhile (by another
    thread in a long job) are still collected. A process that froze objects itself is
    left as it is."""
    if gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


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
    if raw[0] != 46 and b"/." not in raw:  # no part starts with "." (most paths): quick
        return raw[0] != 47 and raw[-1] != 47 and b"//" not in raw
    framed = b"/" + raw + b"/"
    return b"//" not in framed and b"/./" not in framed and b"/../" not in framed


def new_hasher(algorithm: str):  # -> hashlib-like object
    return ALGORITHMS[algorithm]()


_ONE_SHOT: dict[str, Callable[[memoryview], str]] = {
    "xxh128": xxhash.xxh3_128_hexdigest,
    "md5": lambda data: hashlib.md5(data).hexdigest(),  # noqa: S324  (what rsync chose)
}


def digest_of(algorithm: str, data: memoryview) -> str:
    """The hex digest of `data` in one call (no hasher object per file)."""
    return _ONE_SHOT[algorithm](data)


class Entry(NamedTuple):
    """One manifest line. A named tuple: verification makes one per line read, and a
    tuple is built in a third of a frozen dataclass's time."""

    path: bytes
    size: int
    mtime_ns: int
    inode: int
    checksum: str  # lowercase hex, or UNKNOWN

    def line(self) -> bytes:
        return line_of(self.checksum.encode(), self.size, self.mtime_ns, self.inode, self.path)


LINE = b"%s\t%d\t%d\t%d\t%s\n"  # checksum, size, mtime_ns, inode, escape_path(path)


def line_of(checksum: bytes, size: int, mtime_ns: int, inode: int, path: bytes) -> bytes:
    """One manifest line (Entry.line without building an Entry)."""
    return LINE % (checksum, size, mtime_ns, inode, escape_path(path))


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

    def write_lines(self, lines: list[bytes], first_path: bytes, last_path: bytes) -> None:
        """Lines in manifest form for paths in increasing order, first_path to last_path."""
        if self._last is not None and first_path <= self._last:
            raise ValueError("manifest entries must come in increasing path order")
        self.write_block(b"".join(lines), last_path)

    def write_block(self, block: bytes, last_path: bytes | None) -> None:
        """Whole lines already in manifest form and in order (a run of the base's), the
        last of them for `last_path`."""
        self._fh.write(block)
        lines = block.count(b"\n")
        self.count += lines
        self.known += lines - block.startswith(b"-\t") - block.count(b"\n-\t")
        if last_path is not None:
            self._last = last_path

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


# A block of well-formed lines is parsed in one pass of _ROWS (each line anchored at its
# start, so a match can neither skip nor straddle a line) once _unsafe() found nothing a
# path may not hold (empty, `.` or `..` parts, a leading or trailing slash, NUL) and no
# escape that needs unescape_path: such blocks, a bad line, and the trailer take the
# per-line way. Either way the entries and the problems are the same.
BLOCK = 1 << 20
_ROWS = re.compile(
    rb"^(-|[0-9a-f]{8,128})\t([0-9]{1,19})\t([0-9]{1,20})\t([0-9]{1,20})\t([^\t\n]{1,4096})\n",
    re.MULTILINE,
)
_NEVER_IN_A_SAFE_BLOCK = (b"\0", b"\\", b"//", b"\t/", b"/\n", b"\t\n")


def _unsafe(block: bytes) -> bool:
    """Whether a block of lines may hold a path safe_relative() refuses or an escape.
    The fields before a path hold no slash, dot or NUL, so a substring scan suffices."""
    if any(bad in block for bad in _NEVER_IN_A_SAFE_BLOCK):
        return True
    for start in (b"\t.", b"/."):  # a part that begins with a dot: "." or ".."?
        i = block.find(start)
        while i >= 0:
            j = i + 2 + (block[i + 2 : i + 3] == b".")
            if block[j : j + 1] in (b"/", b"\n"):
                return True
            i = block.find(start, i + 2)
    return False


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
    _last: bytes | None = None
    _lineno: int = 1  # of the header; the next line is 2
    _ended: int = 0  # the trailer's line number, once read
    _after: bool = False  # data after the trailer was reported

    MAX_PROBLEMS = 20

    def _problem(self, text: str) -> None:
        self.problem_count += 1
        if len(self.problems) < self.MAX_PROBLEMS:
            self.problems.append(text)

    def __iter__(self) -> Iterator[Entry]:
        for block in self._blocks():
            yield from self._block(block)

    def line_runs(self) -> Iterator[tuple[int, list[bytes]]]:
        """The entry lines as they are (without the newline), in runs: (line number of
        the run's first, the lines), for take() and accept(). A merge of several
        snapshots' manifests parses one of each set of byte-identical lines instead of
        each (pobsync_runner.integrity). Take or accept every line of a run before
        asking for the next run: the trailer's count is checked against both. Long
        lines, the trailer and data after it are reported here as by iteration."""
        for block in self._blocks():
            bodies = block[:-1].split(b"\n")
            trailer = bodies.pop() if bodies[-1].startswith(b"end ") else None
            rest = block if trailer is None else block[: -len(trailer) - 1]
            if rest.startswith(b"end ") or b"\nend " in rest:
                # A trailer before the block's last line: one line at a time.
                for body in bodies if trailer is None else [*bodies, trailer]:
                    if not self._trailer_or_after(body):
                        yield self._lineno, [body]
                continue
            if bodies:
                first = self._lineno + 1
                self._lineno += len(bodies)
                yield first, bodies
            if trailer is not None:
                self._trailer_or_after(trailer)

    def take(self, body: bytes, lineno: int) -> Entry | None:
        """The entry of line `lineno` (`body`, without its newline), checked as
        iteration checks it: None, and a problem, for a bad or out-of-order line."""
        if len(body) >= MAX_LINE:
            self._problem(f"line {lineno}: longer than {MAX_LINE} bytes")
            return None
        entry = self._parse(body)
        if entry is None:
            self._problem(f"line {lineno}: not a manifest entry")
            return None
        if self._last is not None and entry.path <= self._last:
            self._problem(f"line {lineno}: out of order or duplicate path")
            return None
        self._last = entry.path
        self.entries += 1
        self.unknown += entry.checksum == UNKNOWN
        return entry

    def accept(self, count: int, last: bytes, unknown: int) -> None:
        """The next `count` lines are byte for byte lines that another reader's take()
        checked, in order, after every path this reader took or accepted before (the
        merge's order), `last` the path of the last of them and `unknown` of them
        without a checksum: counted without parsing them again."""
        self._last = last
        self.entries += count
        self.unknown += unknown

    def _blocks(self) -> Iterator[bytes]:
        """The file's whole lines in blocks of up to BLOCK bytes; a line longer than
        MAX_LINE is skipped as a problem, a missing trailer is one at the end."""
        tail = b""
        skipping = False  # inside a line longer than MAX_LINE
        while not self._ended:
            chunk = self.fh.read(BLOCK)
            if not chunk:
                break  # a cut last line (in `tail`) is reported as truncated below
            data = tail + chunk
            if skipping:
                newline = data.find(b"\n")
                if newline < 0:
                    tail = b""
                    continue
                data, skipping = data[newline + 1 :], False
            cut = data.rfind(b"\n") + 1
            block, tail = data[:cut], data[cut:]
            if block:
                yield block
            if len(tail) > MAX_LINE and not self._ended:
                self._lineno += 1
                self._problem(f"line {self._lineno}: longer than {MAX_LINE} bytes")
                tail, skipping = b"", True
        if self._ended and not self._after and (tail or self.fh.read(1)):
            self._problem(f"line {self._ended}: data after the trailer")
        if not self.complete:
            self._problem(f"truncated after {self.entries} entries (no trailer)")

    def _block(self, block: bytes) -> Iterator[Entry]:
        start = block.rfind(b"\n", 0, len(block) - 1) + 1
        trailer = None
        if block.startswith(b"end ", start):  # the trailer: by itself, after the rest
            block, trailer = block[:start], block[start:-1]
        if block:
            yield from self._rows(block)
        if trailer is not None:
            yield from self._lines([trailer])

    def _rows(self, block: bytes) -> Iterator[Entry]:
        rows = None if _unsafe(block) else _ROWS.findall(block)
        if rows is None or len(rows) != block.count(b"\n"):
            yield from self._lines(block[:-1].split(b"\n"))
            return
        lineno, last = self._lineno, self._last
        for cs, size, mtime, inode, path in rows:
            lineno += 1
            if len(size) == 19 and int(size) >= 1 << 63:  # beyond what any filesystem stores
                self._problem(f"line {lineno}: not a manifest entry")
                continue
            if last is not None and path <= last:
                self._problem(f"line {lineno}: out of order or duplicate path")
                continue
            last = path
            self.entries += 1
            if cs == b"-":
                self.unknown += 1
            yield Entry(path, int(size), int(mtime), int(inode), cs.decode())
        self._lineno, self._last = lineno, last

    def _lines(self, lines: list[bytes]) -> Iterator[Entry]:
        for body in lines:
            if self._trailer_or_after(body):
                continue
            entry = self.take(body, self._lineno)
            if entry is not None:
                yield entry

    def _trailer_or_after(self, body: bytes) -> bool:
        """Counts the line; True when it is no entry to take: the trailer (checked
        against the entries so far), or anything after it (reported once)."""
        self._lineno += 1
        if self._ended:
            if not self._after:
                self._problem(f"line {self._ended}: data after the trailer")
                self._after = True
            return True
        if body.startswith(b"end "):
            self._ended = self._lineno
            if body[4:] == b"%d" % self.entries:
                self.complete = True
            else:
                self._problem(f"line {self._lineno}: trailer does not match the entry count")
            return True
        return False

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
