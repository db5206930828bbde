"""The snapshots' directory listings compared ahead, in a child process on the other core.

A whole host's verification checks a path every snapshot holds with the same manifest
line once for all of them (integrity._Agreement), after comparing that directory's
listing in every snapshot with the first one's (integrity._differing_names). Those
listings are one getdents pass per snapshot and directory: kernel time, about 0.1 s per
20,000 files for ten snapshots, which a thread cannot take off the verification (os.scandir
builds its entries holding the GIL; docs/performance.md).

ListingsAhead forks a child that walks the first snapshot's manifest, and for each of its
directories in that order runs the same _differing_names over the same snapshots and
writes the result down a pipe. The verification takes a directory's result when the
child has already sent it and lists for itself otherwise (the child is late, gone, or
sent something else): the child can only save time, never make the verification wait,
and a result is the same function of the same directories whichever process computed it.

Record on the pipe: struct "<IiI" (directory's length, the number of differing names or
-1 for "cannot compare", the names' total length), the directory, then each name with a
"<H" length. The child touches no database, logs nothing and leaves with os._exit.
"""

from __future__ import annotations

import errno
import os
import signal
import struct
from collections.abc import Callable
from pathlib import Path

from pobsync_runner.linux import die_with_parent, libc
from pobsync_runner.manifest import ManifestError, open_manifest
from pobsync_runner.safe_read import DirCursor

HEADER = struct.Struct("<IiI")
NAME_LENGTH = struct.Struct("<H")
READ_SIZE = 1 << 20
NOT_READY = object()  # differing()'s answer when the child has not sent that directory

Differ = Callable[[bytes, list], "set[bytes] | None"]


class ListingsAhead:
    def __init__(self, snapshots: list[Path], differ: Differ) -> None:
        """Start the child for `snapshots` (the first one's manifest gives the order);
        `differ` is _differing_names, passed in to keep one definition of it."""
        self.pid: int | None = None
        self.buffer = bytearray()
        self.at = 0
        read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
        lib, parent_pid = libc(), os.getpid()
        pid = os.fork()
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

    def differing(self, parent: bytes) -> set[bytes] | None | object:
        """The child's _differing_names for `parent`, or NOT_READY. Records before it
        (directories the verification did not ask about) are passed over."""
        while True:
            record = self._next_record()
            if record is None:
                return NOT_READY
            directory, names = record
            if directory == parent:
                return names

    def _next_record(self) -> tuple[bytes, set[bytes] | None] | None:
        while True:
            parsed = _parse(self.buffer, self.at)
            if parsed is not None:
                self.at, directory, names = parsed
                return directory, names
            if not self._fill():
                return None

    def _fill(self) -> bool:
        """Whatever the pipe holds now, appended to the buffer; False when nothing."""
        if self.fd is None:
            return False
        try:
            data = os.read(self.fd, READ_SIZE)
        except BlockingIOError:
            return False
        except OSError:
            data = b""
        if not data:  # the child is done (or gone): the rest is listed here
            self.close()
            return False
        if self.at:
            del self.buffer[: self.at]
            self.at = 0
        self.buffer += data
        return True

    def close(self) -> None:
        if self.pid is not None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            os.waitpid(self.pid, 0)
            self.pid = None
        if getattr(self, "fd", None) is not None:
            os.close(self.fd)
            self.fd = None


def _parse(buffer: bytearray, at: int) -> tuple[int, bytes, set[bytes] | None] | None:
    """(position after it, directory, names) of the complete record at `at`, or None."""
    end = at + HEADER.size
    if end > len(buffer):
        return None
    dir_length, count, names_length = HEADER.unpack_from(buffer, at)
    stop = end + dir_length + names_length + NAME_LENGTH.size * max(count, 0)
    if stop > len(buffer):
        return None
    directory = bytes(buffer[end : end + dir_length])
    if count < 0:
        return stop, directory, None
    names: set[bytes] = set()
    at = end + dir_length
    for _ in range(count):
        (n,) = NAME_LENGTH.unpack_from(buffer, at)
        at += NAME_LENGTH.size
        names.add(bytes(buffer[at : at + n]))
        at += n
    return stop, directory, names


def _record(directory: bytes, names: set[bytes] | None) -> bytes:
    if names is None:
        return HEADER.pack(len(directory), -1, 0) + directory
    parts = [HEADER.pack(len(directory), len(names), sum(map(len, names))), directory]
    for name in names:
        parts += (NAME_LENGTH.pack(len(name)), name)
    return b"".join(parts)


def _quiet_signals() -> None:
    """The child stops on SIGTERM/SIGINT itself and does not write into the parent's
    wakeup pipe (pobsync_models.stopping), which it inherited."""
    for signum in (signal.SIGTERM, signal.SIGINT):
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
            _write_all(write_fd, _record(parent, differ(parent, live)))
    except OSError as exc:
        if exc.errno != errno.EPIPE:
            raise
    finally:
        reader.close()
        for cursor in cursors:
            cursor.close()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
