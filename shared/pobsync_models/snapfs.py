"""Reading a snapshot's content safely: it is hostile data from a remote machine.

Invariants, for every caller (browse pages, API, downloads, restore path checks):
* A path is parsed before it touches the disk: absolute, no NUL, no `.` or `..`
  component, at most MAX_PATH bytes and NAME_MAX bytes per name; anything else is a
  SnapshotPathError with one line.
* The disk is walked one component at a time from a descriptor of the snapshot root,
  each directory opened with O_NOFOLLOW | O_DIRECTORY relative to its parent
  (dir_fd), so no symlink inside the snapshot is ever followed and nothing outside the
  snapshot directory can be reached, whatever the names or links in it say. The last
  component is only lstat()ed or opened with O_NOFOLLOW.
* pobsync's own files in the snapshot root (its metadata) are not content: they are
  neither listed nor reachable. Nor is, at any depth, the directory a running backup
  pulls a source into beside its base (pobsync_runner.beside_base).
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

MAX_PATH = 4096
NAME_MAX = 255
# The snapshot's metadata area (pobsync_runner.snapshots.METADATA_FILE and siblings).
METADATA_PREFIX = ".pobsync-"
# A running backup's incoming directory inside its base snapshot (beside_base).
INCOMING_PREFIX = ".pobsync-incoming-"
_INCOMING = re.compile(r"\.pobsync-incoming-[0-9a-f]{32}")
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def is_incoming_name(name: str) -> bool:
    """Whether a directory entry is a running backup's incoming directory."""
    return name.startswith(INCOMING_PREFIX) and _INCOMING.fullmatch(name) is not None


class SnapshotPathError(ValueError):
    """A path that is malformed or not (safely) in the snapshot; str() is one line."""


def parse_path(raw: object) -> tuple[str, ...]:
    """The components of an absolute path as it was on the host; () is the root."""
    if not isinstance(raw, str) or not raw:
        raise SnapshotPathError("a path is required (absolute, as on the host: /etc/nginx)")
    if "\x00" in raw:
        raise SnapshotPathError("path contains a NUL byte")
    if len(os.fsencode(raw)) > MAX_PATH:
        raise SnapshotPathError(f"path is longer than {MAX_PATH} bytes")
    if not raw.startswith("/"):
        raise SnapshotPathError(f"path {raw!r} is not absolute (write it as on the host: /etc)")
    parts = tuple(p for p in raw.split("/") if p)
    for part in parts:
        if part in (".", ".."):
            raise SnapshotPathError(f"path {raw!r} contains {part!r}")
        if len(os.fsencode(part)) > NAME_MAX:
            raise SnapshotPathError(f"a name in path {raw[:80]!r}... is over {NAME_MAX} bytes")
    if parts and parts[0].startswith(METADATA_PREFIX):
        raise SnapshotPathError(f"{parts[0]} is pobsync's metadata, not backed-up content")
    for part in parts:
        if is_incoming_name(part):
            raise SnapshotPathError(f"{part} is a running backup's, not backed-up content")
    return parts


def join(parts: tuple[str, ...]) -> str:
    return "/" + "/".join(parts)


def _os_error(exc: OSError, parts: tuple[str, ...]) -> SnapshotPathError:
    where = join(parts)
    if isinstance(exc, FileNotFoundError):
        return SnapshotPathError(f"{where} is not in the snapshot")
    if exc.errno in (40, 20):  # ELOOP (a symlink), ENOTDIR
        return SnapshotPathError(f"{where} goes through a symlink or non-directory")
    return SnapshotPathError(f"{where}: {exc.strerror}")


@contextmanager
def open_dir(root: Path, parts: tuple[str, ...]) -> Iterator[int]:
    """A descriptor of the directory at `parts`, reached without following a symlink."""
    try:
        fd = os.open(root, _DIR_FLAGS)
    except OSError as exc:
        raise SnapshotPathError(f"the snapshot directory cannot be read: {exc.strerror}") from None
    try:
        for i, part in enumerate(parts):
            try:
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                raise _os_error(exc, parts[: i + 1]) from None
            os.close(fd)
            fd = child
        yield fd
    finally:
        os.close(fd)


def lstat(root: Path, parts: tuple[str, ...]) -> os.stat_result:
    """lstat of the entry at `parts` (a symlink is reported as the link itself)."""
    if not parts:
        with open_dir(root, ()) as fd:
            return os.fstat(fd)
    with open_dir(root, parts[:-1]) as parent:
        try:
            return os.stat(parts[-1], dir_fd=parent, follow_symlinks=False)
        except OSError as exc:
            raise _os_error(exc, parts) from None


def open_regular(root: Path, parts: tuple[str, ...]) -> tuple[int, os.stat_result]:
    """A read descriptor of the regular file at `parts` and its fstat; the caller
    closes it. A symlink, a directory or a special file is refused (O_NOFOLLOW,
    O_NONBLOCK so a FIFO cannot hang us, then S_ISREG on the opened file)."""
    if not parts:
        raise SnapshotPathError("/ is a directory")
    with open_dir(root, parts[:-1]) as parent:
        fd = open_child_file(parts[-1], parent, parts)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise SnapshotPathError(f"{join(parts)} is not a regular file")
    except BaseException:
        os.close(fd)
        raise
    return fd, st


def open_child_file(name: str, parent_fd: int, parts: tuple[str, ...] = ()) -> int:
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        return os.open(name, flags, dir_fd=parent_fd)
    except OSError as exc:
        raise _os_error(exc, parts or (name,)) from None


def open_child_dir(name: str, parent_fd: int) -> int:
    return os.open(name, _DIR_FLAGS, dir_fd=parent_fd)


@dataclass(frozen=True)
class Entry:
    """One directory entry, from lstat: a symlink is a link, never its target."""

    name: str
    kind: str  # dir, file, symlink, fifo, socket, char, block
    size: int
    mode: int  # permission bits
    uid: int
    gid: int
    mtime: float
    inode: int
    nlink: int
    target: str | None = None  # a symlink's target, as text; never resolved

    @property
    def mode_text(self) -> str:
        return stat.filemode(self.mode | _TYPE_BITS[self.kind])


_KINDS = (
    (stat.S_ISDIR, "dir"),
    (stat.S_ISREG, "file"),
    (stat.S_ISLNK, "symlink"),
    (stat.S_ISFIFO, "fifo"),
    (stat.S_ISSOCK, "socket"),
    (stat.S_ISCHR, "char"),
    (stat.S_ISBLK, "block"),
)
_TYPE_BITS = {
    "dir": stat.S_IFDIR,
    "file": stat.S_IFREG,
    "symlink": stat.S_IFLNK,
    "fifo": stat.S_IFIFO,
    "socket": stat.S_IFSOCK,
    "char": stat.S_IFCHR,
    "block": stat.S_IFBLK,
}


def kind_of(mode: int) -> str:
    for test, name in _KINDS:
        if test(mode):
            return name
    return "other"


def entry(name: str, st: os.stat_result, parent_fd: int) -> Entry:
    kind = kind_of(st.st_mode)
    target = None
    if kind == "symlink":
        target = os.fsdecode(os.readlink(os.fsencode(name), dir_fd=parent_fd))
    return Entry(
        name=name,
        kind=kind,
        size=st.st_size,
        mode=stat.S_IMODE(st.st_mode),
        uid=st.st_uid,
        gid=st.st_gid,
        mtime=st.st_mtime,
        inode=st.st_ino,
        nlink=st.st_nlink,
        target=target,
    )


def sorted_names(fd: int, at_root: bool) -> list[tuple[bool, str]]:
    """(is_dir, name) of every entry, directories first, then by name. Uses the
    directory's d_type only (no stat per entry), so a 100,000-entry directory costs one
    readdir pass and a sort; callers stat only the page they show."""
    with os.scandir(fd) as it:
        names = [
            (not e.is_dir(follow_symlinks=False), e.name)
            for e in it
            if not (at_root and e.name.startswith(METADATA_PREFIX)) and not is_incoming_name(e.name)
        ]
    names.sort()
    return [(not not_dir, name) for not_dir, name in names]


@dataclass(frozen=True)
class Listing:
    total: int
    entries: list[Entry]


def list_dir(root: Path, parts: tuple[str, ...], offset: int = 0, limit: int = 200) -> Listing:
    """One page of the directory at `parts`, directories first; raises SnapshotPathError
    when it is not a directory reachable without symlinks."""
    with open_dir(root, parts) as fd:
        names = sorted_names(fd, at_root=not parts)
        out = []
        for _is_dir, name in names[offset : offset + limit]:
            try:
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                continue
            out.append(entry(name, st, fd))
    return Listing(total=len(names), entries=out)


@dataclass(frozen=True)
class Version:
    """A run of consecutive snapshots holding the same version of a path (the same
    inode: unchanged files are hard links from one snapshot to the next), or holding
    nothing at that path (entry None)."""

    first: str  # oldest snapshot name of the run
    last: str  # newest
    count: int
    entry: Entry | None


def versions(snapshots: list[tuple[str, Path]], parts: tuple[str, ...]) -> list[Version]:
    """The versions of `parts` across `snapshots` ((name, root), oldest first), oldest
    first. Files and links are one version while their inode stays; a directory is
    a new inode in every snapshot, so it is one version while its mode, owner and
    mtime stay."""
    if not parts:
        raise SnapshotPathError("name a file or directory; / itself has no history")
    out: list[Version] = []
    last_key: object = object()
    for name, root in snapshots:
        try:
            with open_dir(root, parts[:-1]) as parent:
                st = os.stat(parts[-1], dir_fd=parent, follow_symlinks=False)
                item = entry(parts[-1], st, parent)
        except (SnapshotPathError, FileNotFoundError, NotADirectoryError):
            item, key = None, None
        else:
            key = (
                ("dir", st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns)
                if item.kind == "dir"
                else (st.st_dev, st.st_ino)
            )
        if out and key == last_key:
            prev = out[-1]
            out[-1] = Version(prev.first, name, prev.count + 1, prev.entry)
        else:
            out.append(Version(name, name, 1, item))
        last_key = key
    return out
