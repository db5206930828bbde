"""Reading files inside a snapshot safely: hostile names, planted symlinks, a FIFO in place
of a file, a file swapped between stat and open. No database, no manifest here.

Every path is resolved one component at a time with O_NOFOLLOW from the snapshot's own
directory descriptor, so a symlink planted inside a snapshot is never followed; files are
opened O_NOFOLLOW and O_NONBLOCK (a FIFO cannot hang a run) and checked to be the inode
that was stat'ed. Reads go through one reused buffer, paced by Throttle (--max-rate).
"""

from __future__ import annotations

import errno
import mmap
import os
import stat
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from pobsync_runner.manifest import digest_of, new_hasher

CHUNK = 1 << 20
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
# os.fsencode's and os.fsdecode's own arguments, without their call per name.
FS_ENCODING, FS_ERRORS = sys.getfilesystemencoding(), sys.getfilesystemencodeerrors()
NOT_REGULAR = -1  # DirCursor.inodes()'s value for a name that is no regular file

# One read buffer for the process (verification is single-threaded): no allocation per file.
# Page-aligned (an anonymous mapping): a bytearray this large is its own malloc mapping and
# starts 16 bytes into a page, and the kernel copies into that about half as fast here
# (docs/performance.md, "After the aligned buffer, one-pass manifest blocks ...").
_BUFFER = mmap.mmap(-1, CHUNK)
_BUFFERS = [_BUFFER]
_VIEW = memoryview(_BUFFER)


class Stopped(Exception):  # noqa: N818  (a signal, not an error)
    """The stop event was set; the run ends cancelled."""


class DirCursor:
    """Resolves relative paths inside one snapshot without following any symlink,
    keeping the last directory open (paths come sorted, so it changes rarely)."""

    def __init__(self, root: Path) -> None:
        self.root_fd = os.open(root, _DIR_FLAGS)
        self._dir: bytes | None = None
        self._fd: int | None = None
        self._error: OSError | None = None
        self._inodes: tuple[int, dict[str, int]] | None = None
        # Another way to the listing, asked first: (st_dev, inodes) or None to list here
        # (a whole host's verification: listing_ahead.ListingsAhead.listing).
        self.hint: Callable[[bytes], tuple[int, dict[str, int]] | None] | None = None

    def directory(self, parent: bytes) -> int:
        if parent != self._dir:
            self._close_dir()
            self._dir, self._error, self._inodes = parent, None, None
            if parent:
                fd = self.root_fd
                try:
                    for part in parent.split(b"/"):
                        nxt = _open_dir(part, fd)
                        if fd != self.root_fd:
                            os.close(fd)
                        fd = nxt
                except OSError as exc:
                    if fd != self.root_fd:
                        os.close(fd)
                    self._error = exc
                else:
                    self._fd = fd
        if self._error is not None:
            # The same error again, without the tracebacks of its earlier raises (each
            # raise of one object adds to its traceback, which holds their frames).
            raise self._error.with_traceback(None)
        return self._fd if self._fd is not None else self.root_fd

    def lstat(self, path: bytes) -> tuple[int, os.stat_result]:
        parent, _, name = path.rpartition(b"/")
        fd = self.directory(parent)
        return fd, os.stat(name, dir_fd=fd, follow_symlinks=False)

    def identity(self, path: bytes) -> tuple[int, int, bool] | None:
        """(st_dev, d_ino, is a regular file) of `path` from its directory's listing,
        read once per directory (one getdents pass instead of an lstat per name);
        None when the directory has no such name. Raises OSError as lstat() does for
        the directory. d_ino equals st_ino on the file systems pobsync stores on; the
        caller checks that (an lstat per inode, or the fstat of hash_file)."""
        parent, _, name = path.rpartition(b"/")
        return self.listed(parent, name)[1]

    def listed(self, parent: bytes, name: bytes) -> tuple[int, tuple[int, int, bool] | None]:
        """(descriptor of `parent`, identity of `name` in it) as identity() says."""
        fd, dev, inodes = self.inodes(parent)
        inode = inodes.get(name.decode(FS_ENCODING, FS_ERRORS))
        if inode is None:
            return fd, None
        return fd, (dev, inode, True) if inode != NOT_REGULAR else (dev, -1, False)

    def inodes(self, parent: bytes) -> tuple[int, int, dict[str, int]]:
        """(descriptor of `parent`, its st_dev, every name's d_ino, or NOT_REGULAR for
        anything but a regular file, keyed by the name as os.scandir gives it: str,
        which encodes back to the exact bytes). Read once while `parent` stays the
        cursor's directory, through the descriptor itself: no path walked, no symlink
        followed, no /proc needed. The type comes with the listing (d_type), so nothing
        else (a device, a FIFO) is ever opened to be read."""
        fd = self.directory(parent)
        if self._inodes is None and self.hint is not None:
            self._inodes = self.hint(parent)
        if self._inodes is None:
            with os.scandir(fd) as entries:
                self._inodes = (
                    os.fstat(fd).st_dev,
                    {
                        e.name: e.inode() if e.is_file(follow_symlinks=False) else NOT_REGULAR
                        for e in entries
                    },
                )
        return fd, *self._inodes

    def _close_dir(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
        self._fd = None

    def close(self) -> None:
        self._close_dir()
        os.close(self.root_fd)


def _open_dir(name: bytes, dir_fd: int) -> int:
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno == errno.ENOTDIR:  # O_NOFOLLOW|O_DIRECTORY on a symlink says ENOTDIR
            try:
                link = stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
            except OSError:
                link = False
            if link:
                raise OSError(errno.ELOOP, "symlink in the path") from None
        raise


class Throttle:
    def __init__(self, max_rate: int | None, stop: threading.Event | None) -> None:
        self.rate, self.stop = max_rate, stop
        self.start, self.bytes = time.monotonic(), 0

    def account(self, n: int) -> None:
        self.bytes += n
        if self.stop is not None and self.stop.is_set():
            raise Stopped
        if self.rate:
            ahead = self.bytes / self.rate - (time.monotonic() - self.start)
            while ahead > 0:
                time.sleep(min(ahead, 0.5))
                if self.stop is not None and self.stop.is_set():
                    raise Stopped
                ahead = self.bytes / self.rate - (time.monotonic() - self.start)


def hash_file(
    dir_fd: int, name: bytes, identity: tuple[int, int], algorithm: str, throttle: Throttle
) -> tuple[str, int, os.stat_result]:
    """(hex digest, bytes read, its fstat) of the regular file `name`, which must still be
    the inode `identity` (st_dev, st_ino). Reads the size fstat reports, no more: a file
    of one chunk or less costs one read and a one-shot hash (the usual case), and the
    end of a file is never read just to see that it ends."""
    fd = os.open(name, _FILE_FLAGS, dir_fd=dir_fd)
    try:
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino) != identity or not stat.S_ISREG(st.st_mode):
            raise OSError(errno.ESTALE, "replaced while being verified")
        size = st.st_size
        n = os.readv(fd, _BUFFERS) if size else 0
        throttle.account(n)
        if n == size:
            return digest_of(algorithm, _VIEW[:n]), n, st
        h = new_hasher(algorithm)
        total = 0
        while n:
            h.update(_VIEW[:n])
            total += n
            if total >= size:
                break
            n = os.readv(fd, _BUFFERS)
            throttle.account(n)
        return h.hexdigest(), total, st
    finally:
        os.close(fd)
