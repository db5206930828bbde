"""Deterministic timing helpers for engine tests: a transfer made slow with --bwlimit,
and a background action fired once rsync has visibly started writing."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path


def rsync_pids(path_fragment: str) -> list[int]:
    """Pids of rsync processes whose command line mentions path_fragment."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"rsync") and any(path_fragment.encode() in a for a in argv):
            pids.append(int(entry))
    return pids


def wait_for(condition: Callable[[], bool], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def _being_written(dirpath: str, name: str, stem: str) -> bool:
    """rsync writes a file into a temporary `.<stem>.XXXXXX` beside its final name, or,
    in a full backup (--inplace, rsync.receive_in_place), at its name: unfinished while
    its mtime is still its last write's (rsync sets the source's once it is done)."""
    if name.startswith(f".{stem}."):
        return True
    if name != stem:
        return False
    try:
        st = os.lstat(os.path.join(dirpath, name))
    except OSError:
        return False
    return st.st_mtime_ns == st.st_ctime_ns


def temp_file_started(staging_root: Path, stem: str) -> bool:
    """Whether rsync has started writing `stem` anywhere under staging_root."""
    for dirpath, _dirs, files in os.walk(staging_root):
        if any(_being_written(dirpath, f, stem) for f in files):
            return True
    return False


def temp_file_size(tree: Path, stem: str) -> int:
    """Size of `stem` as rsync is writing it anywhere under tree (0 if not started; the
    largest if several look unfinished)."""
    size = 0
    for dirpath, _dirs, files in os.walk(tree):
        for name in files:
            if _being_written(dirpath, name, stem):
                with contextlib.suppress(OSError):
                    size = max(size, os.path.getsize(os.path.join(dirpath, name)))
    return size


def when(condition: Callable[[], bool], action: Callable[[], None]) -> threading.Thread:
    """Run `action` in a thread as soon as `condition` holds."""

    def body() -> None:
        if wait_for(condition):
            action()

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    return thread


def staging_dirs(host_dir: Path) -> list[Path]:
    if not host_dir.exists():
        return []
    return [p for p in host_dir.iterdir() if p.name.endswith(".partial")]


def make_slow_source(src: Path, megabytes: int = 3) -> None:
    """a-small.txt (sent first), b-big.bin (slow under --bwlimit), z-late.txt (last)."""
    (src / "a-small.txt").write_text("small\n")
    (src / "b-big.bin").write_bytes(os.urandom(megabytes * 1024 * 1024))
    (src / "z-late.txt").write_text("late\n")
