"""A small, separate filesystem for storage tests: tmpfs with a size and an inode count.

Mounting needs root (CAP_SYS_ADMIN). Where it is refused, a bind mount of a directory is
tried (a separate mount point, though not a small one: enough for tests that only need
"another mount"); where both are refused the test skips loudly (fails under CI=true).
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

from tests.support.need import need


def _mount(argv: list[str]) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    return "" if done.returncode == 0 else (done.stderr.strip() or f"exit {done.returncode}")


@contextlib.contextmanager
def small_fs(where: Path, *, size: str = "8m", inodes: int = 1000) -> Iterator[Path]:
    """tmpfs of `size` bytes and `inodes` inodes mounted at `where` (created)."""
    where.mkdir(parents=True, exist_ok=True)
    error = _mount(
        [
            "mount",
            "-t",
            "tmpfs",
            "-o",
            f"size={size},nr_inodes={inodes},mode=0700",
            "tmpfs",
            str(where),
        ]
    )
    need(not error, f"cannot mount a tmpfs here ({error}); run the tests as root")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


@contextlib.contextmanager
def separate_mount(where: Path, *, size: str = "64m") -> Iterator[Path]:
    """A separate filesystem at `where`: a tmpfs, else a bind mount of a directory."""
    where.mkdir(parents=True, exist_ok=True)
    error = _mount(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(where)])
    if error:
        backing = where.with_name(where.name + ".bind")
        backing.mkdir(exist_ok=True)
        error = _mount(["mount", "--bind", str(backing), str(where)])
    need(not error, f"cannot mount a separate filesystem here ({error}); run as root")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(root: Path, *, leave_bytes: int, chunk: int = 64 * 1024) -> Path:
    """Write one file under root until about `leave_bytes` are still free."""
    import os

    target = root / "filler"
    with open(target, "wb") as fh:
        while True:
            st = os.statvfs(root)
            free = st.f_bavail * st.f_frsize
            if free - chunk < leave_bytes:
                break
            fh.write(b"\0" * chunk)
            fh.flush()
    return target


def use_inodes(root: Path, *, leave: int) -> None:
    """Create empty files under root until only `leave` inodes are free."""
    import os

    d = root / "inodes"
    d.mkdir()
    i = 0
    while os.statvfs(root).f_favail > leave:
        (d / str(i)).touch()
        i += 1
