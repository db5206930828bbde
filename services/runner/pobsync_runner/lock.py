"""The per-host filesystem lock: flock on <backup_root>/<host>/.lock.

Invariant: whoever writes into a host's directory (a backup, a retention apply) holds
an exclusive flock on that file, whatever started it (CLI, runner, another machine
sharing the disk). The kernel drops the lock when the last descriptor closes, so a
killed process never leaves a stale lock behind. The backup passes the descriptor to
rsync (pass_fds), so the lock stays held until rsync itself has exited, even if the
Python process died first.

A lock *file* rather than the directory itself: on NFS, flock is emulated with a
whole-file POSIX lock, which needs a descriptor opened for writing.
"""

from __future__ import annotations

import fcntl
import os
import socket
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from pobsync_runner.errors import BackupError, HostBusy

LOCK_FILE = ".lock"


class HostLock:
    """Context manager; raises HostBusy at once, or waits (polling `stop`) if wait."""

    def __init__(
        self,
        host_dir: Path,
        *,
        wait: bool = False,
        stop: threading.Event | None = None,
        purpose: str = "backup",
        poll_seconds: float = 0.5,
    ) -> None:
        self.host_dir = Path(host_dir)
        self.path = self.host_dir / LOCK_FILE
        self.wait = wait
        self.stop = stop
        self.purpose = purpose
        self.poll_seconds = poll_seconds
        self.fd: int | None = None

    def __enter__(self) -> HostLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def acquire(self) -> None:
        try:
            self.host_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise BackupError(f"cannot lock {self.path}: {exc.strerror}") from None
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if not self.wait:
                        raise HostBusy(
                            f"host {self.host_dir.name} is busy ({holder(self.path)}); "
                            "try again later or use --wait"
                        ) from None
                    if self.stop is not None and self.stop.is_set():
                        raise HostBusy(
                            f"stopped while waiting for the lock of host {self.host_dir.name}"
                        ) from None
                    time.sleep(self.poll_seconds)
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd
        info = (
            f"{self.purpose} by {socket.gethostname()}:{os.getpid()} "
            f"since {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC\n"
        )
        os.ftruncate(fd, 0)
        os.pwrite(fd, info.encode(), 0)
        # A backup that died while pulling beside its base left its files inside the
        # base snapshot: whoever holds the lock next puts them where they belong.
        from pobsync_runner.beside_base import recover

        recover(self.host_dir)

    def release(self) -> None:
        if self.fd is not None:
            # close, never LOCK_UN: an unlock would also drop the lock held through the
            # same open file by an rsync that is (against all odds) still running.
            # The holder text stays: it is only read while someone holds the lock.
            os.close(self.fd)
            self.fd = None


def holder(path: Path) -> str:
    """Who holds the lock, as written by the holder (best effort)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        text = ""
    return text or "held by another process"
