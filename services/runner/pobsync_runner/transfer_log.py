"""rsync's transfer log: one line per file it transferred, with the whole-file checksum
it computed while receiving (`%C`), the manifest's source (pobsync_runner.manifest_build).

rsync writes it with --log-file in a pull's receiver: "2026/11/30 02:55:01 [16890] "
then LOG_FORMAT; the negotiated checksum's name (xxh128, or md5 with an older peer) is
in the same log through --debug=NSTR. A full backup has rsync print the same lines on
its stdout instead (--out-format, no date and pid in front), which the runner's stdout
reader copies into the same file (rsync.RsyncProcess's `transfer_log`): a line down a
pipe costs rsync less than a line appended and flushed to a file on the backup disk. It
is parsed a block of whole lines at a time by regular expressions, in C, either way: a
full backup logs every file.

LogFollower reads a full backup's log while rsync still runs, so that the manifest's
work per file (the log's items, a stat() of each file) is done beside rsync rather than
after it.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
import tempfile
import threading
from binascii import hexlify
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO

from pobsync_runner.manifest import _HEX, LINE, UNKNOWN, escape_path
from pobsync_runner.safe_read import DirCursor

LOG_FORMAT = "@pobsync|%i|%l|%C|%n"
LOG_MARK = b"@pobsync|"
# --log-file puts the date and rsync's pid in front; --out-format (stdout) nothing.
_LOG_PREFIX = rb"^(?:\d{4}/\d\d/\d\d \d\d:\d\d:\d\d \[\d+\] )?@pobsync\|"
_LOG_ITEM_AT = re.compile(_LOG_PREFIX, re.MULTILINE)
_LOG_ITEMS = re.compile(_LOG_PREFIX + rb"([^|\n]*)\|([^|\n]*)\|([^|\n]*)\|(.*)$", re.MULTILINE)
# A full backup's items: received regular files (size and checksum captured) and created
# directories, symlinks, devices and specials (nothing captured).
_RECEIVED_ITEMS = re.compile(
    _LOG_PREFIX
    + rb"(?:>f[^|\n]*\|([0-9]{1,19})\|([0-9a-f]{8,128}) *\|(.*)|c[dLDS][^|\n]*\|[^|\n]*\|.*)$",
    re.MULTILINE,
)
_LOG_ALGOS = re.compile(
    rb"(?:\[\d+\] |^)(?:Client|Server) (?:negotiated )?checksum: ([a-z0-9]+)[^\S\n]*$",
    re.MULTILINE,
)
LOG_BLOCK = 1 << 20
_RSYNC_ESCAPE = re.compile(rb"\\#([0-7]{3})")
UNKNOWN_BYTES = UNKNOWN.encode()

Logged = dict[bytes, tuple[int, bytes]]  # raw path: (size, checksum or UNKNOWN_BYTES)


def transfer_log_args(log_path: Path, *, on_stdout: bool = False) -> list[str]:
    """rsync options that make it write each transferred file's checksum to `log_path`,
    or, `on_stdout`, print it for RsyncProcess to copy there."""
    if on_stdout:
        return [f"--out-format={LOG_FORMAT}", "--debug=NSTR"]
    return [f"--log-file={log_path}", f"--log-file-format={LOG_FORMAT}", "--debug=NSTR"]


def transfer_log_path(host_dir: Path, name: str) -> Path:
    """Beside the snapshot, not in it: a seeded run's --delete-excluded would delete it."""
    return host_dir / f".{name}.transfer.log"


def unescape_rsync(name: bytes) -> bytes:
    if b"\\#" not in name:
        return name
    return _RSYNC_ESCAPE.sub(lambda m: bytes([int(m.group(1), 8) & 0xFF]), name)


def parse_block(block: bytes) -> tuple[str | None, list[tuple[bytes, ...]], bool]:
    """Whole lines of the log: (the first checksum algorithm a line of them names, their
    items as (iflags, size, checksum, name as logged), whether an item line among them
    is damaged and left out)."""
    items = _LOG_ITEMS.findall(block)
    # Every item line holds the marker once, so more markers than items means a damaged
    # item line (or a name holding the marker: taken as damaged too, which costs
    # carry_over its shortcut, nothing more).
    damaged = len(items) != block.count(LOG_MARK)
    return _block_algorithm(block), items, damaged


def _block_algorithm(block: bytes) -> str | None:
    """The first algorithm a line of `block` names that is not an item line (a file's
    name can say anything)."""
    if b"checksum: " not in block:  # most blocks: no need to try the pattern at each line
        return None
    for m in _LOG_ALGOS.finditer(block):
        start = block.rfind(b"\n", 0, m.start()) + 1
        if not _LOG_ITEM_AT.match(block, start):
            return m.group(1).decode()
    return None


def line_blocks(read: Callable[[int], bytes], size: int) -> Iterator[bytes]:
    """What `read(size)` gives until it gives nothing, in blocks of whole lines (the
    last one as it ends)."""
    pending = b""
    while chunk := read(size):
        block = pending + chunk
        at = block.rfind(b"\n") + 1
        pending = block[at:]
        if at:
            yield block[:at]
    if pending:
        yield pending


def log_blocks(log_path: Path) -> Iterator[tuple[str | None, list[tuple[bytes, ...]], bool]]:
    """The whole log, parse_block() by parse_block(), in blocks of whole lines."""
    with open(log_path, "rb") as src:
        for block in line_blocks(src.read, LOG_BLOCK):
            yield parse_block(block)


def received_files(block: bytes) -> list[tuple[bytes, int, bytes]] | None:
    """What logged_items(parse_block(block)) gives, in one pattern pass and no per-item
    test in Python, when every item of `block` is a received regular file with its
    checksum or a created directory, symlink, device or special (a full backup's log);
    None otherwise (then the general way)."""
    rows = _RECEIVED_ITEMS.findall(block)
    if len(rows) != block.count(LOG_MARK):
        return None
    return [
        (name if b"\\#" not in name else unescape_rsync(name), int(size), checksum)
        for size, checksum, name in rows
        if size
    ]


def logged_items(
    items: list[tuple[bytes, ...]], prefix: bytes
) -> list[tuple[bytes, int, bytes]] | None:
    """The regular files among `items` as (raw path, size, checksum or UNKNOWN_BYTES) in
    log order, or None when the log cannot vouch for them: a hard link rsync made between
    new files (-H)."""
    found = []
    for iflags, size, checksum, name in items:
        if iflags[1:2] != b"f":
            continue  # a directory, symlink or device: not in the manifest
        if iflags[:1] not in (b">", b"c"):
            return None
        checksum = checksum.strip()
        known = iflags[:1] == b">" and _HEX.match(checksum) and size.isdigit()
        found.append((prefix + unescape_rsync(name),
                      int(size) if size.isdigit() else -1,
                      checksum if known else UNKNOWN_BYTES))  # fmt: skip
    return found


def add_logged(logged: Logged, items: list[tuple[bytes, ...]], prefix: bytes) -> bool:
    """Add the regular files among `items` to `logged`; False when the log cannot vouch
    for them (logged_items), or a name is logged twice (rsync's log escaping is
    ambiguous)."""
    found = logged_items(items, prefix)
    if found is None:
        return False
    for raw, size, checksum in found:
        if raw in logged:
            return False
        logged[raw] = (size, checksum)
    return True


def logged_files(
    transfer_logs: Sequence[tuple[Path, bytes]], limit: int
) -> tuple[Logged, str | None] | None:
    """The regular files rsync logged, and the algorithm every log names; None when the
    logs cannot vouch for them (add_logged), a line is damaged, or more than `limit`
    files (and one block's) would be held."""
    logged: Logged = {}
    algorithms: set[str | None] = set()
    for transfer_log, prefix in transfer_logs:
        algorithm = None
        for named, items, damaged in log_blocks(transfer_log):
            if damaged or not add_logged(logged, items, prefix) or len(logged) > limit:
                return None
            algorithm = algorithm or named
        algorithms.add(algorithm)
    if len(algorithms) != 1:
        return None
    return logged, algorithms.pop()


def regular_stat(cursor: DirCursor, path: bytes) -> tuple[int, int, int] | None:
    """(size, mtime_ns, inode) of the regular file at `path`, stat()ed through its
    directory's descriptor (no path walk per file, no symlink followed); None when it
    is not there as a regular file."""
    try:
        _, st = cursor.lstat(path)
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    return st.st_size, st.st_mtime_ns, st.st_ino


FOLLOW_SECONDS = 0.25
SORTED_BLOCK = 1 << 20

# A spilled record: the raw path in hex (which sorts as the raw path does), a tab, then
# the file's manifest line from a stat() while rsync ran, or, where there is none, a tab
# (a manifest line never starts with one), its logged size and checksum, and its path
# as a manifest line holds it. sorted_blocks() gives them without the key.
UNSTATED = b"\t"
_STATED = b"%s\t" + LINE  # manifest.line_of's line, the name escaped only where it must be


class LogFollower:
    """Reads one rsync's log as it grows (a thread, every FOLLOW_SECONDS) and stat()s
    each logged file once the next file is logged. rsync's receiver (receiver.c,
    recv_files) logs a file, then finishes it (in place, its mtime and attributes
    set), and only then receives the next; it never touches a finished file
    again in a run, except to receive it once more after a failed whole-file check,
    which logs it a second time (and a hard link between new files, -H, is an item the
    follower refuses). So a stat() made once the next file is logged is the file's
    final one, and its manifest line is made there and then. The last file logged, or
    one not there as logged, gets its logged size and checksum instead, and the
    manifest stat()s it after rsync (manifest_build._followed).

    Each record goes to an unnamed spill file beside the log, not to memory, so a full
    backup of any size costs the same few MB here; sorted_blocks() gives them back in
    path order (sorted by `sort`, which spills to disk in turn). For a full backup,
    whose log holds every file: the stat()s then overlap rsync's own work
    (docs/performance.md). A log it cannot vouch for (a damaged line, a hard link
    between new files) ends it: followed() is then None and the manifest is built after
    rsync, by the walk."""

    def __init__(self, log_path: Path, root: Path) -> None:
        self.log_path, self.root = log_path, root
        self.algorithm: str | None = None
        self.failed = False
        self.files = 0  # regular files logged
        self.stated = 0  # of them, stat()ed while rsync ran
        self._fd: int | None = None
        self._pending = b""
        self._unstated: list[tuple[bytes, int, bytes]] = []
        self._plain_names = True  # no name in _unstated needs escaping in a manifest
        self._spill: IO[bytes] | None = None
        self._cursor: DirCursor | None = None
        self._done = threading.Event()
        self._thread = threading.Thread(
            target=self._follow, name=f"LogFollower {log_path.name}", daemon=True
        )

    def start(self) -> LogFollower:
        self._thread.start()
        return self

    def finish(self) -> None:
        """Stop following and read the rest of the log (once rsync has exited)."""
        if self._done.is_set():
            return
        self._done.set()
        if self._thread.is_alive() or self._thread.ident is not None:
            self._thread.join()
        try:
            self._take(final=True)
            self._spill_out(self._unstated, stat_them=False)  # may not be in place yet
            self._unstated = []
        except OSError:
            self._fail()
        finally:
            self._close()

    def followed(self) -> LogFollower | None:
        """The follower, its log read to the end, or None when the log cannot vouch for
        its files."""
        self.finish()
        return None if self.failed else self

    def sorted_blocks(self) -> Iterator[bytes]:
        """The records in raw path order without their keys, in blocks of whole lines:
        the manifest's lines, but where a line starts with UNSTATED. A path logged more
        than once comes once (so `files` says more than there are lines). Once: the
        spill goes with it. `sort` orders them on the key alone (spilling to disk past
        32 MB) and `cut` drops the key, so no Python runs per record."""
        spill, self._spill = self._spill, None
        if spill is None:
            return
        env = {**os.environ, "LC_ALL": "C"}
        with spill:
            spill.flush()
            spill.seek(0)
            sort_argv = ["sort", "-u", "-t", "\t", "-k1,1", "-S", "32M"]
            sort_argv += ["-T", str(self.log_path.parent)]
            with (
                subprocess.Popen(sort_argv, stdin=spill, stdout=subprocess.PIPE, env=env) as keyed,
                subprocess.Popen(
                    ["cut", "-f2-"], stdin=keyed.stdout, stdout=subprocess.PIPE, env=env
                ) as cut,
            ):
                keyed.stdout.close()  # type: ignore[union-attr]  (cut's now)
                yield from line_blocks(cut.stdout.read, SORTED_BLOCK)  # type: ignore[union-attr]
            for proc in (keyed, cut):
                if proc.returncode:
                    raise subprocess.CalledProcessError(proc.returncode, proc.args)

    def discard(self) -> None:
        """Drop the spill (a run whose manifest is not written from it)."""
        self.finish()
        if self._spill is not None:
            self._spill.close()
            self._spill = None

    def _follow(self) -> None:
        try:
            while not self._done.wait(FOLLOW_SECONDS):
                self._take(final=False)
        except Exception:  # noqa: BLE001  (never fatal: the manifest is then built after)
            self._fail()

    def _fail(self) -> None:
        self.failed = True
        self._unstated = []
        if self._spill is not None:
            self._spill.close()
            self._spill = None

    def _take(self, *, final: bool) -> None:
        if self.failed:
            return
        if self._fd is None:
            try:
                self._fd = os.open(self.log_path, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                return  # rsync has not opened it yet
        while chunk := os.read(self._fd, LOG_BLOCK):
            block = self._pending + chunk
            cut = block.rfind(b"\n") + 1
            self._pending = block[cut:]
            self._parse(block[:cut])
            if self.failed:
                return
            if len(self._unstated) > 1:  # a block's worth at most is held
                # The last logged file may not be in place yet; every earlier one is.
                self._spill_out(self._unstated[:-1], stat_them=True)
                self._unstated = self._unstated[-1:]
                held = self._unstated[0][0]
                self._plain_names = escape_path(held) == held
        if final and self._pending:
            self._parse(self._pending)
            self._pending = b""

    def _parse(self, block: bytes) -> None:
        if not block:
            return
        found = received_files(block)
        if found is None:
            named, items, damaged = parse_block(block)
            found = None if damaged else logged_items(items, b"")
        else:
            named = _block_algorithm(block)
        if found is None:
            self._fail()
            return
        self.algorithm = self.algorithm or named
        self._unstated += found
        # rsync's log prints a name's control characters but the tab as `\#ooo`
        # escapes: with neither a backslash, a tab nor a return in the block, each name
        # is the raw path, and a manifest line holds it as it is (manifest.escape_path).
        self._plain_names &= not (b"\\" in block or b"\t" in block or b"\r" in block)
        self.files += len(found)

    def _spill_out(self, files: list[tuple[bytes, int, bytes]], *, stat_them: bool) -> None:
        """Spill `files`' records: each one's manifest line from a stat() now
        (`stat_them`: each is finished), else its logged size and checksum. The loop is
        the follower's work per file: one stat() through the directory's descriptor
        (DirCursor keeps it open while the log stays in one directory), one line."""
        if self.failed or not files:
            return
        if self._spill is None:
            self._spill = tempfile.TemporaryFile(
                prefix=".pobsync-follow.", dir=self.log_path.parent
            )
        if stat_them and self._cursor is None:
            self._cursor = DirCursor(self.root)
        cursor, plain, lines, stated = self._cursor, self._plain_names, [], 0
        for path, size, checksum in files:
            seen = regular_stat(cursor, path) if stat_them and cursor is not None else None
            if seen is None or seen[0] != size:
                # Not in place, or not as logged: the manifest stat()s it.
                lines.append(_unstated_record(path, size, checksum))
                continue
            lines.append(
                _STATED % (hexlify(path), checksum, size, seen[1], seen[2],
                           path if plain else escape_path(path))
            )  # fmt: skip
            stated += 1
        self.stated += stated
        self._spill.write(b"".join(lines))

    def _close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._cursor is not None:
            self._cursor.close()
            self._cursor = None


def _unstated_record(path: bytes, size: int, checksum: bytes) -> bytes:
    return b"%s\t%s%d\t%s\t%s\n" % (hexlify(path), UNSTATED, size, checksum, escape_path(path))
