"""Benchmark: what the depth of the --link-dest base costs rsync per file (issue 16).

    .venv/bin/python bench/linkdest.py [--files N --rounds K --depth D --workdir DIR]

rsync 3.5 resolves every path under --link-dest with its ownership walk (one fstatat,
openat and close per path component, from "/", for the stat of the base file and again
for the link), so an unchanged incremental costs in proportion to the number of
components of the base's path. This measures that on one local tree (no ssh, so the
per-file cost is not diluted), an unchanged incremental each time, interleaved, median
of --rounds, each after an untimed sync:

- plain: `rsync -a --numeric-ids --link-dest=W/plain/prev SRC/ W/plain/newK/` (the
  operator's copy by hand; the baseline);
- layout: the source's contents into `W/root/host/NEW/<source path>/` linked against
  `W/root/host/PREV/<source path>` (pobsync's layout, one rsync per source by contents);
- sibling: the same, but into a staging directory beside the base's source directory,
  `--link-dest=../<name>` (relative: rsync joins it to the destination's path first);
- lent: the base's source directory renamed to `W/root/host/.base` for the run and back
  afterwards (a base as short as the plain copy's);
- relative: the one `--relative` rsync pobsync ran before issue 16 (`SRC/./<source path>`
  into `W/root/host/RK/`, `--link-dest=W/root/host/PREV`);
- beside: what pobsync runs now (pobsync_runner.beside_base): into an incoming directory
  inside the base's copy of the source's parent, bind-mounted at /run/pobsync in rsync's
  own mount namespace, names starting at the source's leaf (needs root; skipped without).

Each line prints its ratio to plain.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# bench/queue.py would shadow the standard library's `queue`: the repository root, not
# this folder, on the path (as bench/backup.py does).
sys.path[:] = [str(REPO)] + [p for p in sys.path if p not in ("", str(REPO / "bench"))]

from pobsync_runner.beside_base import MOUNTPOINT, available, enter_namespace  # noqa: E402


def rsync(*args: str) -> None:
    subprocess.run(["rsync", "-a", "--numeric-ids", *args], check=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", type=int, default=20_000)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--depth", type=int, default=4, help="components of the source's path")
    ap.add_argument("--workdir", help="where to build the trees (default: a tmp dir)")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="pobsync-bench-linkdest-", dir=args.workdir))
    try:
        return run(work, args)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(w: Path, args: argparse.Namespace) -> int:
    rel = Path(*[f"s{i}" for i in range(args.depth)])  # the source's path, e.g. s0/s1/s2/s3
    src = w / "src" / rel
    for i in range(args.files):
        d = src / f"d{i // 100:04d}"
        if i % 100 == 0:
            d.mkdir(parents=True)
        (d / f"f{i:06d}").write_bytes(os.urandom(256))
    (w / "plain").mkdir()
    rsync(f"{src}/", f"{w}/plain/prev/")
    prev = w / "root" / "host" / "PREV" / rel
    prev.parent.mkdir(parents=True)
    rsync(f"{src}/", f"{prev}/")

    def into(name: str, k: int) -> Path:
        dest = w / "root" / "host" / f"{name}{k}" / rel
        dest.parent.mkdir(parents=True)
        return dest

    def plain(k: int) -> None:
        rsync(f"--link-dest={w}/plain/prev", f"{src}/", f"{w}/plain/new{k}/")

    def layout(k: int) -> None:
        rsync(f"--link-dest={prev}", f"{src}/", f"{into('N', k)}/")

    def sibling(k: int) -> None:
        stage = prev.parent / f".stage{k}"
        rsync(f"--link-dest=../{prev.name}", f"{src}/", f"{stage}/")
        stage.rename(into("S", k))

    def lent(k: int) -> None:
        lent_at = w / "root" / "host" / ".base"
        prev.rename(lent_at)
        try:
            rsync(f"--link-dest={lent_at}", f"{src}/", f"{into('L', k)}/")
        finally:
            lent_at.rename(prev)

    def relative(k: int) -> None:
        dest = w / "root" / "host" / f"R{k}"
        dest.mkdir()
        rsync("--relative", f"--link-dest={prev.parents[len(rel.parts) - 1]}",
              f"{w}/src/./{rel}", f"{dest}/")  # fmt: skip

    def beside(k: int) -> None:
        parent, leaf = rel.parent, rel.name
        in_base = prev.parent  # the base's copy of the source's parent
        incoming = in_base / f".pobsync-incoming-{k:032x}"
        incoming.mkdir()
        fd = os.open(in_base, os.O_RDONLY | os.O_DIRECTORY)
        args = ["--relative", f"--link-dest={MOUNTPOINT}", f"{w}/src/{parent}/./{leaf}"]
        if parent.parts:
            args += [f"--exclude=/{parent}/*", f"{w}/src/./{parent}"]
        try:
            subprocess.run(
                ["rsync", "-a", "--numeric-ids", *args, f"{MOUNTPOINT}/{incoming.name}/"],
                check=True,
                pass_fds=(fd,),
                preexec_fn=lambda: enter_namespace(libc, str(in_base), fd),  # noqa: PLW1509
            )
        finally:
            os.close(fd)
        dest = into("B", k)
        (incoming / leaf).rename(dest)
        shutil.rmtree(incoming)  # the parents' own (empty) directories

    steps = [plain, layout, sibling, lent, relative]
    if available():
        libc = ctypes.CDLL(None, use_errno=True)
        steps.append(beside)
    else:
        print("beside: skipped (no private mount namespace here: run as root)")
    times: dict[str, list[float]] = {s.__name__: [] for s in steps}
    for k in range(args.rounds):
        for step in steps if k % 2 == 0 else steps[::-1]:
            os.sync()
            started = time.perf_counter()
            step(k)
            times[step.__name__].append(time.perf_counter() - started)
    linked = (w / "root" / "host" / "L0" / rel / "d0000" / "f000000").stat().st_nlink
    base = statistics.median(times["plain"])
    print(
        f"unchanged incremental of {args.files} files, source depth {args.depth}, "
        f"median of {args.rounds}; rsync {rsync_version()}"
    )
    for name, values in times.items():
        value = statistics.median(values)
        print(f"  {name:<8} {value:6.3f} s   ratio {value / base:.2f}")
    print(f"  (every copy hard-links the base: link count of one file {linked})")
    return 0


def rsync_version() -> str:
    out = subprocess.run(["rsync", "--version"], capture_output=True, text=True).stdout
    return out.split()[2] if out else "?"


if __name__ == "__main__":
    raise SystemExit(main())
