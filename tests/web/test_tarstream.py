"""The tar stream keeps memory flat whatever the size: a 1 GB directory (sparse files,
so the test is quick and light on disk) streams in a child process whose peak RSS is
within a few MB of streaming a 10 MB one (test_browse.py extracts real tars)."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from pobsync_web.browse.tarstream import _header, _info

REPO = Path(__file__).resolve().parents[2]
# VmHWM is this program's own peak: getrusage's ru_maxrss survives exec on Linux, so a
# child of a large pytest process would report the parent's size.
CHILD = """
import os, sys
from pathlib import Path
from pobsync_web.browse.tarstream import tar_stream
n = 0
with open(os.devnull, "wb") as out:
    for piece in tar_stream(Path(sys.argv[1]), (), gzip=False):
        n += len(piece)
        out.write(piece)
hwm = next(l for l in open("/proc/self/status") if l.startswith("VmHWM:")).split()[1]
print(n, hwm)
"""


def tree(root: Path, files: int, size: int) -> Path:
    root.mkdir()
    for i in range(files):
        with open(root / f"f{i}", "wb") as f:
            f.truncate(size)
            f.write(b"head")
    return root


def stream(root: Path) -> tuple[int, int]:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(root)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    ).stdout.split()
    return int(out[0]), int(out[1])


@pytest.mark.slow
def test_a_1_gb_directory_streams_in_the_memory_of_a_10_mb_one(tmp_path):
    small = tree(tmp_path / "small", 4, 10 * 1024 * 1024 // 4)
    big = tree(tmp_path / "big", 4, 1024 * 1024 * 1024 // 4)
    small_bytes, small_rss = stream(small)
    big_bytes, big_rss = stream(big)
    assert big_bytes >= 1024 * 1024 * 1024 and small_bytes >= 10 * 1024 * 1024
    assert big_rss - small_rss < 16 * 1024, (small_rss, big_rss)  # KiB
    assert big_rss < 100 * 1024


@pytest.mark.parametrize(
    ("name", "kind", "link"),
    [
        ("etc/passwd", tarfile.REGTYPE, ""),
        ("etc", tarfile.DIRTYPE, ""),
        ("etc/escape", tarfile.SYMTYPE, "/etc/shadow"),
        ("etc/hard", tarfile.LNKTYPE, "etc/passwd"),
        ("naïve\nname", tarfile.REGTYPE, ""),  # not ASCII: tarfile's pax path record
        ("d/" + "x" * 120, tarfile.REGTYPE, ""),  # over 100 bytes: likewise
    ],
)
def test_headers_are_what_tarfile_writes(tmp_path, name, kind, link):
    path = tmp_path / "f"
    path.write_text("data")
    os.utime(path, ns=(1_700_000_000_123_456_789, 1_700_000_000_123_456_789))
    info = _info(name, path.lstat())
    info.type, info.linkname, info.size = kind, link, 4 if kind == tarfile.REGTYPE else 0
    assert _header(info) == info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
    assert info.pax_headers == {"mtime": "1700000000.123456789"}
