"""Parsing rsync's output one line at a time: progress (--info=progress2) and --stats.

Run with --no-human-readable and LC_ALL=C, so numbers are plain digits. Nothing here
keeps more than the latest figures: memory does not depend on the file count.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# "  1234567  45%   12.34MB/s    0:00:10 (xfr#123, to-chk=456/7890)"
_PROGRESS_RE = re.compile(
    r"^\s*(?P<bytes>\d+)\s+(?P<percent>\d+)%\s+\S+\s+\S+"
    r"(?:\s+\(xfr#(?P<xfr>\d+),\s+(?:to|ir)-chk=(?P<left>\d+)/(?P<total>\d+)\))?"
)
_STATS = {
    "files_all": re.compile(r"^Number of files:\s+(\d+)"),
    "files_total": re.compile(r"^Number of files:.*\breg:\s+(\d+)"),
    "files_transferred": re.compile(r"^Number of regular files transferred:\s+(\d+)"),
    "bytes_total": re.compile(r"^Total file size:\s+(\d+)"),
    "bytes_transferred": re.compile(r"^Total transferred file size:\s+(\d+)"),
    "bytes_received": re.compile(r"^Total bytes received:\s+(\d+)"),
}

EXIT_MEANINGS = {
    1: "syntax or usage error",
    2: "protocol incompatibility",
    3: "errors selecting input/output files or directories",
    5: "error starting the client-server protocol",
    10: "error in socket I/O",
    11: "error in file I/O",
    12: "error in the rsync protocol data stream",
    13: "errors with program diagnostics",
    14: "error in IPC code",
    20: "received SIGUSR1 or SIGINT",
    22: "error allocating core memory buffers",
    23: "partial transfer due to error",
    24: "partial transfer due to vanished source files",
    25: "the --max-delete limit stopped deletions",
    30: "timeout in data send/receive",
    35: "timeout waiting for daemon connection",
    255: "ssh failed (connection, authentication or host key)",
}


def describe_exit(code: int) -> str:
    if code < 0:
        return f"rsync was killed by signal {-code}"
    meaning = EXIT_MEANINGS.get(code)
    return f"rsync exited with code {code}" + (f" ({meaning})" if meaning else "")


@dataclass
class Progress:
    bytes: int = 0
    percent: float = 0.0
    files: int = 0


@dataclass
class Stats:
    files_all: int | None = None  # every entry: files, dirs, links
    files_total: int | None = None  # regular files in the snapshot
    files_transferred: int | None = None  # regular files copied (not linked)
    bytes_total: int | None = None
    bytes_transferred: int | None = None  # size of the files copied, however sent
    bytes_received: int | None = None  # what crossed the wire (a resumed file: its rest)


class OutputParser:
    """Feed it stdout lines, then close() it; it keeps the latest progress and the final
    stats.

    Progress lines (one per file, thousands a second) are only stored; the newest is
    parsed when someone reads `progress`, which a poller does every few seconds.

    Every other line is taken (take()) once the next one arrives: a line that a
    progress line follows is the name of the file rsync reports on when asked for
    progress by signal (RsyncProcess, progress_by_signal), so it is dropped unread. A
    file named "Number of files: 9" never poses as rsync's own output.
    """

    def __init__(self) -> None:
        self.stats = Stats()
        self.progress_seen = 0  # bumps on every progress line; lets a poller skip no-ops
        self._raw_progress = ""
        self._progress = Progress()
        self._held: str | None = None  # the last plain line, not yet taken

    @property
    def progress(self) -> Progress:
        raw = self._raw_progress
        if raw:
            self._raw_progress = ""
            m = _PROGRESS_RE.match(raw)
            if m:
                files = self._progress.files
                if m.group("total"):
                    files = int(m.group("total")) - int(m.group("left"))
                self._progress = Progress(int(m.group("bytes")), float(m.group("percent")), files)
        return self._progress

    def feed(self, line: str) -> None:
        if self.feed_progress(line):
            return
        held, self._held = self._held, line
        if held is not None:
            self.take(held)

    def close(self) -> None:
        """The output has ended: take the line still held."""
        held, self._held = self._held, None
        if held is not None:
            self.take(held)

    def take(self, line: str) -> None:
        """One line of rsync's own output that is not progress."""
        for field, pattern in _STATS.items():
            sm = pattern.match(line)
            if sm:
                setattr(self.stats, field, int(sm.group(1)))

    def feed_progress(self, line: str) -> bool:
        """Take `line` if it is a progress line (complete or not); True if so. rsync
        starts each with \r, which _lines keeps and no file name can hold."""
        if not line.startswith("\r") or "%" not in line:
            return False
        self._held = None  # a file's name, when the progress answers a signal
        self._raw_progress = line
        self.progress_seen += 1
        return True


# Why ssh never got rsync started, by the line ssh printed: rsync itself reports that as
# exit 255 or 12 at random (whichever end notices the closed pipe first), so the cause is
# read from stderr, never from the code. (cause, needles; the first needle found in the
# tail also picks the detail line, most specific first.)
HOST_KEY_CAUSE = "host key verification failed"
CONNECTION_CAUSES = (
    ("connection refused", ("Connection refused",)),
    (
        HOST_KEY_CAUSE,
        ("has changed and you have requested strict checking", "host key is known for",
         "Host key verification failed"),
    ),
    ("authentication failed", ("Permission denied (",)),
    ("connection timed out", ("Connection timed out", "Operation timed out", "timed out during")),
    ("no route to host", ("No route to host", "Network is unreachable")),
    ("host name not found", ("Could not resolve hostname",)),
)  # fmt: skip


def connection_failure(lines: list[str]) -> tuple[str, str] | None:
    """(cause, ssh's line) when ssh failed before rsync could start on the remote: then
    nothing was transferred and nothing on either side changed. None otherwise."""
    # rsync's own lines ("rsync: ... Permission denied (13)") are never ssh's verdict.
    ssh_lines = [line for line in lines if not line.lstrip().startswith("rsync")]
    for cause, needles in CONNECTION_CAUSES:
        for needle in needles:
            for line in ssh_lines:
                if needle in line:
                    return cause, line.strip()
    return None


def describe_failure(code: int, lines: list[str]) -> str:
    """One line for a failed run: the cause first when ssh named one (the same words
    whatever exit code rsync chose), else the exit code's meaning and the telling line."""
    failure = connection_failure(lines)
    if failure is not None:
        cause, detail = failure
        return f"{cause}: {detail}"
    detail = first_error_line(lines)
    return describe_exit(code) + (f": {detail}" if detail else "")


def first_error_line(lines: list[str]) -> str:
    """The most telling stderr line: ssh's own complaint first, else rsync's first error."""
    for needle in (
        "Host key verification failed",
        "Permission denied",
        "Connection refused",
        "Connection timed out",
        "No route to host",
        "Could not resolve hostname",
    ):
        for line in lines:
            if needle in line:
                return line.strip()
    for line in lines:
        text = line.strip()
        if text and not text.startswith(("rsync error:", "rsync: connection unexpectedly")):
            return text
    return lines[-1].strip() if lines else ""
