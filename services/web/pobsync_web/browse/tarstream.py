"""A directory of a snapshot as a tar stream (optionally gzip), built while it is sent.

Invariants:
* Constant memory whatever the size: file contents are read and yielded in CHUNK
  pieces, output is flushed every FLUSH bytes; no temporary file, nothing is built
  whole. Open descriptors are bounded by the directory depth.
* Hostile content stays inert: the tree is walked with dir_fd and O_NOFOLLOW
  (pobsync_models.snapfs), a symlink is archived as a symlink (never followed), a
  special file as its header only, sockets are skipped, pobsync's metadata in the
  snapshot root is left out.
* Headers are POSIX pax: long names, long link targets and names that are not UTF-8
  survive; a file linked more than once in the archive is stored once, then as hard
  links to its first name. A file is archived with the size fstat() gave when it was
  opened; if it changed since (it should not: snapshots are immutable) the data is
  cut or zero-padded to that size so the archive stays valid.
"""

from __future__ import annotations

import os
import stat
import tarfile
import zlib
from collections.abc import Iterator
from pathlib import Path

from pobsync_models import snapfs

CHUNK = 1024 * 1024
FLUSH = 256 * 1024
BLOCK = tarfile.BLOCKSIZE
RECORD = tarfile.RECORDSIZE
GZIP_LEVEL = 1  # speed over ratio: the archive is streamed while an operator waits


def _info(name: str, st: os.stat_result) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mode = stat.S_IMODE(st.st_mode)
    info.uid, info.gid = st.st_uid, st.st_gid
    sec, nsec = divmod(st.st_mtime_ns, 1_000_000_000)
    info.mtime = sec
    if nsec:  # exact to the nanosecond, as the snapshot has it (pax "mtime" record)
        info.pax_headers = {"mtime": f"{sec}.{nsec:09d}"}
    info.uname = info.gname = ""
    return info


def _header(info: tarfile.TarInfo) -> bytes:
    fast = _fast_header(info)
    if fast is not None:
        return fast
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


_FAST_TYPES = (tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE)
_USTAR_MAGIC = b"ustar\x0000"


def _octal(value: int, width: int) -> bytes:
    return b"%0*o\0" % (width - 1, value)


def _ustar(
    name: bytes, info: tarfile.TarInfo | None, typeflag: bytes, size: int, link: bytes
) -> bytes:
    """One ustar header block; info None for a pax extended header (ids, mode, time 0)."""
    mode, uid, gid, mtime = (info.mode, info.uid, info.gid, info.mtime) if info else (0, 0, 0, 0)
    head = b"".join(
        (
            name.ljust(100, b"\0"),
            _octal(mode, 8),
            _octal(uid, 8),
            _octal(gid, 8),
            _octal(size, 12),
            _octal(mtime, 12),
            b" " * 8,
            typeflag,
            link.ljust(100, b"\0"),
            _USTAR_MAGIC,
            b"\0" * (64 + 16 + 167),  # uname, gname, devmajor/minor (none), prefix, pad
        )
    )
    return head[:148] + b"%06o\0" % sum(head) + head[155:]


def _fast_header(info: tarfile.TarInfo) -> bytes | None:
    """The same header tarfile's PAX writer makes, for the common member (ASCII name
    and link target of at most 100 bytes, ordinary ids and size), built directly: it
    is most of the per-file cost of a tree of small files. None: use tarfile."""
    if info.type not in _FAST_TYPES:
        return None
    name = info.name + "/" if info.type == tarfile.DIRTYPE else info.name
    if not (name.isascii() and info.linkname.isascii()):
        return None
    raw_name, raw_link = name.encode(), info.linkname.encode()
    if len(raw_name) > 100 or len(raw_link) > 100 or "\0" in name + info.linkname:
        return None
    if max(info.uid, info.gid) >= 8**7 or info.size >= 8**11 or not 0 <= info.mtime < 8**11:
        return None
    extra = set(info.pax_headers) - {"mtime"}
    if extra:
        return None
    out = b""
    mtime = info.pax_headers.get("mtime")
    if mtime is not None:
        record = f" mtime={mtime}\n".encode()
        length = len(record) + len(str(len(record)))
        length += len(str(length)) - len(str(len(record)))
        records = str(length).encode() + record
        out = _ustar(b"././@PaxHeader", None, tarfile.XHDTYPE, len(records), b"")
        out += records + b"\0" * ((-len(records)) % BLOCK)
    return out + _ustar(raw_name, info, info.type, info.size, raw_link)


class TarWriter:
    """Yields the tar bytes of one tree; `pieces()` is the stream."""

    def __init__(self, root: Path, parts: tuple[str, ...]) -> None:
        self.root = root
        self.parts = parts
        self.links: dict[tuple[int, int], str] = {}
        self.written = 0

    def pieces(self) -> Iterator[bytes]:
        with snapfs.open_dir(self.root, self.parts) as fd:
            prefix = "/".join(self.parts)
            if prefix:
                yield self._emit(_dir_info(prefix, os.fstat(fd)))
            yield from self._walk(fd, prefix, at_root=not self.parts)
        end = BLOCK * 2
        total = self.written + end
        end += (-total) % RECORD
        yield self._emit_raw(b"\0" * end)

    def _emit(self, info: tarfile.TarInfo) -> bytes:
        return self._emit_raw(_header(info))

    def _emit_raw(self, data: bytes) -> bytes:
        self.written += len(data)
        return data

    def _walk(self, dir_fd: int, prefix: str, at_root: bool) -> Iterator[bytes]:
        for _is_dir, name in snapfs.sorted_names(dir_fd, at_root=at_root):
            try:
                st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            except FileNotFoundError:
                continue
            member = f"{prefix}/{name}" if prefix else name
            mode = st.st_mode
            if stat.S_ISDIR(mode):
                yield self._emit(_dir_info(member, st))
                try:
                    child = snapfs.open_child_dir(name, dir_fd)
                except OSError:
                    continue  # replaced by a link or removed meanwhile: skip, never follow
                try:
                    yield from self._walk(child, member, at_root=False)
                finally:
                    os.close(child)
            elif stat.S_ISREG(mode):
                yield from self._file(dir_fd, name, member, st)
            elif stat.S_ISLNK(mode):
                info = _info(member, st)
                info.type = tarfile.SYMTYPE
                info.linkname = os.fsdecode(os.readlink(os.fsencode(name), dir_fd=dir_fd))
                yield self._emit(info)
            elif stat.S_ISFIFO(mode) or stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
                info = _info(member, st)
                info.type = (
                    tarfile.FIFOTYPE
                    if stat.S_ISFIFO(mode)
                    else tarfile.CHRTYPE
                    if stat.S_ISCHR(mode)
                    else tarfile.BLKTYPE
                )
                info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
                yield self._emit(info)
            # sockets cannot be archived: skipped

    def _file(self, dir_fd: int, name: str, member: str, st: os.stat_result) -> Iterator[bytes]:
        key = (st.st_dev, st.st_ino)
        if st.st_nlink > 1 and key in self.links:
            info = _info(member, st)
            info.type = tarfile.LNKTYPE
            info.linkname = self.links[key]
            yield self._emit(info)
            return
        try:
            fd = snapfs.open_child_file(name, dir_fd)
        except snapfs.SnapshotPathError:
            return
        try:
            fst = os.fstat(fd)
            if not stat.S_ISREG(fst.st_mode):
                return
            if fst.st_nlink > 1:
                self.links[key] = member
            info = _info(member, fst)
            info.size = fst.st_size
            yield self._emit(info)
            left = fst.st_size
            while left > 0:
                data = os.read(fd, min(CHUNK, left))
                if not data:
                    data = b"\0" * min(CHUNK, left)  # shrank meanwhile: keep the size
                left -= len(data)
                yield self._emit_raw(data)
            pad = (-fst.st_size) % BLOCK
            if pad:
                yield self._emit_raw(b"\0" * pad)
        finally:
            os.close(fd)


def _dir_info(member: str, st: os.stat_result) -> tarfile.TarInfo:
    info = _info(member, st)
    info.type = tarfile.DIRTYPE
    return info


def tar_stream(root: Path, parts: tuple[str, ...], *, gzip: bool = False) -> Iterator[bytes]:
    """The tar (or .tar.gz) bytes of the directory at `parts`, in pieces of about
    FLUSH bytes. Raises SnapshotPathError before the first piece if `parts` is not a
    directory reached without symlinks."""
    writer = TarWriter(root, parts)
    pieces = writer.pieces()
    first = next(pieces)  # opens the directory: errors surface before any byte is sent
    return _buffered(_chain(first, pieces), gzip)


def _chain(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    yield first
    yield from rest


def _buffered(pieces: Iterator[bytes], gzip: bool) -> Iterator[bytes]:
    compress = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31) if gzip else None
    buf = bytearray()
    for piece in pieces:
        buf += compress.compress(piece) if compress else piece
        if len(buf) >= FLUSH:
            yield bytes(buf)
            buf.clear()
    if compress:
        buf += compress.flush()
    if buf:
        yield bytes(buf)
