"""The snapshots' directory listings compared ahead, in a child process on the other core.

A whole host's verification lists each directory once per snapshot: to compare every
snapshot's listing with the first one's before a path they all hold with one manifest
line is checked once for all (integrity._Agreement, _differing_names), and to find the
inode each snapshot holds at a path whose lines differ (integrity._locate). Those
listings are one getdents pass per snapshot and directory, kernel time that a thread
cannot take off the verification (os.scandir builds its entries holding the GIL;
docs/performance.md).

ListingsAhead forks a child that walks the first snapshot's manifest and, for each of its
directories in that order, lists the directory in every snapshot, runs the same
_differing_names and sends down a pipe the names that differ with what each snapshot
holds under them (an inode, NOT_REGULAR, or ABSENT). The verification lists only the
first snapshot's directory: the others' listings are the first one's with those names
changed (their DirCursor.hint), and the comparison is the set of those names. When the
child has not sent a directory yet (it is late, gone, or the directory is not one of the
first manifest's) the verification lists it itself: the child can only save time, never
make the verification wait, and a listing is the same whichever process read it.

Record on the pipe: struct "<IiI" (the directory's length, the number of differing names
or -1 for "cannot compare": a snapshot cannot list it or holds it on another device, the
names' total length), the directory, then per name a "<H" length, the name and one "<q"
per snapshot (_values). The child touches no database, logs nothing and leaves by os._exit.
"""

from __future__ import annotations

import errno
import functools
import os
import signal
import struct
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

from pobsync_models.stopping import STOP_SIGNALS
from pobsync_runner.linux import die_with_parent, libc
from pobsync_runner.manifest import ManifestError, open_manifest
from pobsync_runner.safe_read import FS_ENCODING, FS_ERRORS, DirCursor

HEADER = struct.Struct("<IiI")
NAME_LENGTH = struct.Struct("<H")
ABSENT = -2  # a differing name that snapshot does not list (NOT_REGULAR is -1)
READ_SIZE = 1 << 16
MAX_PENDING = 1024  # records read ahead of the verification, at most (memory stays flat)
NOT_READY = object()  # differing()'s answer when the child has not sent that directory


# name -> what each snapshot lists under it; None: the directory cannot be compared
Names = dict[bytes, tuple[int, ...]] | None
Differ = Callable[[bytes, list], "set[bytes] | None"]


class ListingsAhead:
    def __init__(self, cursors: list[DirCursor], snapshots: list[Path], differ: Differ) -> None:
        """Start the child for `snapshots` (the first one's manifest gives the order) and
        hint every cursor but the first (the verification's own, one per snapshot).
        `differ` is integrity._differing_names, passed in to keep one definition."""
        self.count = len(snapshots)
        self.pid: int | None = None
        self.fd: int | None = None
        self.buffer = bytearray()
        self.pending: OrderedDict[bytes, Names] = OrderedDict()
        self.current: tuple[bytes, Names] | None = None
        self.first = cursors[0]
        self.cursors = cursors
        read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
        lib, parent_pid = libc(), os.getpid()
        try:
            pid = os.fork()
        except OSError:  # no process to spare (a limit, a sandbox): list everything here
            os.close(read_fd)
            os.close(write_fd)
            return
        if pid == 0:  # the child
            status = 1
            try:
                os.close(read_fd)
                _quiet_signals()
                die_with_parent(lib, parent_pid)
                _compare_ahead(snapshots, differ, write_fd)
                status = 0
            finally:
                os._exit(status)
        os.close(write_fd)
        os.set_blocking(read_fd, False)
        self.pid, self.fd = pid, read_fd
        for k, cursor in enumerate(cursors[1:], start=1):
            cursor.hint = self._hint(k)

    def differing(self, parent: bytes) -> set[bytes] | None | object:
        """_differing_names of `parent` as the child found it, or NOT_READY."""
        names = self._names(parent)
        return NOT_READY if names is NOT_READY else (None if names is None else set(names))

    def _hint(self, k: int) -> Callable[[bytes], tuple[int, dict[str, int]] | None]:
        def listing(parent: bytes) -> tuple[int, dict[str, int]] | None:
            """Snapshot k's listing of `parent`: the first snapshot's, with the names the
            child found differing as snapshot k lists them; None to list it."""
            names = self._names(parent)
            if names is NOT_READY or names is None:
                return None
            try:
                _, dev, first = self.first.inodes(parent)
            except OSError:
                return None
            inodes = dict(first)
            for name, values in names.items():
                key, value = name.decode(FS_ENCODING, FS_ERRORS), values[k]
                if value == ABSENT:
                    inodes.pop(key, None)
                else:
                    inodes[key] = value
            return dev, inodes

        return listing

    def _names(self, parent: bytes) -> Names | object:
        if self.current is not None and self.current[0] == parent:
            return self.current[1]
        if parent not in self.pending:
            if len(self.pending) >= MAX_PENDING:
                # Directories the verification passed over without asking (those only
                # the first snapshot holds): the older half goes, so the child goes on.
                for _ in range(MAX_PENDING // 2):
                    self.pending.popitem(last=False)
            self._read()
            if parent not in self.pending:
                return NOT_READY
        while True:  # records before it: directories the verification passed over
            directory, names = self.pending.popitem(last=False)
            if directory == parent:
                self.current = (parent, names)
                return names

    def _read(self) -> None:
        """What the pipe holds now, parsed into `pending` (up to MAX_PENDING records)."""
        while self.fd is not None and len(self.pending) < MAX_PENDING:
            try:
                data = os.read(self.fd, READ_SIZE)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:  # the child is done (or gone): what it did not send is listed here
                self._end_child()
                return
            self.buffer += data
            at = 0
            while (parsed := _parse(self.buffer, at, self.count)) is not None:
                at, directory, names = parsed
                self.pending.setdefault(directory, names)
            del self.buffer[:at]

    def close(self) -> None:
        for cursor in self.cursors[1:]:
            cursor.hint = None
        self._end_child()

    def _end_child(self) -> None:
        if self.pid is not None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            os.waitpid(self.pid, 0)
            self.pid = None
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


@functools.cache
def _values(count: int) -> struct.Struct:
    """One "<q" per snapshot: what each lists under a differing name."""
    return struct.Struct(f"<{count}q")


def _parse(buffer: bytearray, at: int, count: int) -> tuple[int, bytes, Names] | None:
    """(position after it, directory, names) of the complete record at `at`, or None."""
    end = at + HEADER.size
    if end > len(buffer):
        return None
    dir_length, n, names_length = HEADER.unpack_from(buffer, at)
    values = _values(count)
    each = NAME_LENGTH.size + values.size
    stop = end + dir_length + names_length + each * max(n, 0)
    if stop > len(buffer):
        return None
    directory = bytes(buffer[end : end + dir_length])
    if n < 0:
        return stop, directory, None
    names: dict[bytes, tuple[int, ...]] = {}
    at = end + dir_length
    for _ in range(n):
        (length,) = NAME_LENGTH.unpack_from(buffer, at)
        at += NAME_LENGTH.size
        name = bytes(buffer[at : at + length])
        at += length
        names[name] = values.unpack_from(buffer, at)
        at += values.size
    return stop, directory, names


def _record(directory: bytes, names: Names, count: int) -> bytes:
    if names is None:
        return HEADER.pack(len(directory), -1, 0) + directory
    parts = [HEADER.pack(len(directory), len(names), sum(map(len, names))), directory]
    values = _values(count)
    for name, held in names.items():
        parts += (NAME_LENGTH.pack(len(name)), name, values.pack(*held))
    return b"".join(parts)


def _quiet_signals() -> None:
    """The child stops on SIGTERM/SIGINT itself and does not write into the parent's
    wakeup pipe (pobsync_models.stopping), which it inherited."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_DFL)
    try:
        signal.set_wakeup_fd(-1)
    except ValueError:  # not the main thread: no wakeup descriptor was set either
        pass


def _compare_ahead(snapshots: list[Path], differ: Differ, write_fd: int) -> None:
    try:
        reader = open_manifest(snapshots[0])
    except ManifestError:
        return
    cursors: list[DirCursor] = []
    try:
        for path in snapshots:
            cursors.append(DirCursor(path))
        live = [(None, cursor) for cursor in cursors]
        last: bytes | None = None
        for entry in reader:
            parent = entry.path.rpartition(b"/")[0]
            if parent == last:
                continue
            last = parent
            names = differ(parent, live)
            held = None if names is None else _held(parent, names, cursors)
            _write_all(write_fd, _record(parent, held, len(cursors)))
    except OSError as exc:
        if exc.errno != errno.EPIPE:
            raise
    finally:
        reader.close()
        for cursor in cursors:
            cursor.close()


def _held(parent: bytes, names: set[bytes], cursors: list[DirCursor]) -> Names:
    """What each snapshot lists under each of `names` in `parent` (listed by `differ`
    just before, so read again from each cursor's cache)."""
    listings = [cursor.inodes(parent)[2] for cursor in cursors]
    held: dict[bytes, tuple[int, ...]] = {}
    for name in names:
        key = name.decode(FS_ENCODING, FS_ERRORS)
        held[name] = tuple(listing.get(key, ABSENT) for listing in listings)
    return held


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
