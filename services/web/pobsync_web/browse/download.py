"""Streaming one file of a snapshot: Content-Length, Content-Disposition, Range.

The file is opened once (O_NOFOLLOW, regular files only: pobsync_models.snapfs) and
sent in CHUNK pieces with pread, so memory is flat whatever its size. It is always
sent as application/octet-stream and as an attachment: content from a backed-up
machine is never rendered by the browser.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.utils.http import content_disposition_header

from pobsync_models import snapfs

CHUNK = 1024 * 1024
_RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")
UNSATISFIABLE = (-1, -1)


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(first, last) byte of a single `Range: bytes=...`; None to send the whole file
    (no header, several ranges, or a malformed one: RFC 9110 lets us ignore those);
    UNSATISFIABLE when it starts past the end."""
    if not header:
        return None
    m = _RANGE_RE.match(header.strip())
    if m is None or (not m.group(1) and not m.group(2)):
        return None
    first, last = m.group(1), m.group(2)
    if not first:  # the last N bytes
        n = int(last)
        if n == 0 or size == 0:
            return UNSATISFIABLE
        return max(0, size - n), size - 1
    start = int(first)
    if last and int(last) < start:
        return None
    if start >= size:
        return UNSATISFIABLE
    end = int(last) if last else size - 1
    return start, min(end, size - 1)


class FileChunks:
    """Iterates `length` bytes of `fd` from `offset`; closes fd when done or closed."""

    def __init__(self, fd: int, offset: int, length: int) -> None:
        self.fd, self.offset, self.left = fd, offset, length

    def __iter__(self) -> Iterator[bytes]:
        try:
            while self.left > 0:
                data = os.pread(self.fd, min(CHUNK, self.left), self.offset)
                if not data:
                    break
                self.offset += len(data)
                self.left -= len(data)
                yield data
        finally:
            self.close()

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def file_response(request: HttpRequest, root: Path, parts: tuple[str, ...]) -> HttpResponse:
    """The file at `parts` as a (possibly partial) attachment; SnapshotPathError when it
    is not a regular file reached without symlinks."""
    fd, st = snapfs.open_regular(root, parts)
    size = st.st_size
    wanted = parse_range(request.headers.get("Range"), size)
    if wanted == UNSATISFIABLE:
        os.close(fd)
        response = HttpResponse(status=416)
        response["Content-Range"] = f"bytes */{size}"
        return response
    start, end = wanted if wanted else (0, size - 1)
    length = end - start + 1 if size else 0
    chunks = FileChunks(fd, start, length)
    if request.method == "HEAD":
        chunks.close()
        response: HttpResponse = HttpResponse(status=206 if wanted else 200)
    else:
        response = StreamingHttpResponse(chunks, status=206 if wanted else 200)
    response["Content-Type"] = "application/octet-stream"
    response["Content-Length"] = str(length)
    response["Accept-Ranges"] = "bytes"
    if wanted:
        response["Content-Range"] = f"bytes {start}-{end}/{size}"
    response["Content-Disposition"] = content_disposition_header(True, parts[-1])
    return response
