"""Benchmark: what resuming an interrupted large file saves (issue 10, item 6).

    .venv/bin/python bench/resume.py [--megabytes 150 --runs 3]

Workload: one file of --megabytes MiB of random bytes served by a loopback sshd. Each round
interrupts a pull when 80% of the file has arrived (the first pull is slowed with
--bwlimit so the interruption lands there, then stopped with SIGTERM to its process
group, as a cancel or a runner shutdown does), then runs the pull again at full speed
and measures that second pull: bytes received over the wire (rsync's "Total bytes
received") and wall time. Baseline, in the same run: plain `rsync -a host:SRC/ DEST/`
by hand, which deletes the interrupted file's temporary copy, so the retry sends the
whole file again. Ours: run_backup() (the runner's engine) twice, the second seeded
from the first's partial with the received part kept in its --partial-dir.
Rounds interleave the two sides; medians of --runs rounds.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:] = [str(REPO)] + [p for p in sys.path if p not in ("", str(REPO / "bench"))]

from bench._site import configure_site, run_in_site  # noqa: E402

SLOW = "--bwlimit=30000"  # KiB/s for the interrupted pull: 80% of 150 MB in about 4 s
INTERRUPT_AT = 0.8


def when_arrived(tree: Path, size: int, action) -> threading.Thread:
    from tests.engine.slow_transfer import temp_file_size

    def body() -> None:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if temp_file_size(tree, "big.bin") >= size * INTERRUPT_AT:
                action()
                return
            time.sleep(0.005)

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    return thread


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--megabytes", type=int, default=150)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    return run_in_site("pobsync-bench-resume-", None, lambda work, server: run(args, work, server))


def run(args, work: Path, server) -> int:
    from pobsync_models.models import Host
    from pobsync_runner.backup import run_backup
    from pobsync_runner.snapshots import read_metadata

    size = args.megabytes * 1024 * 1024
    src = work / "remote" / "data"
    src.mkdir(parents=True)
    with open(src / "big.bin", "wb") as fh:
        for _ in range(args.megabytes):
            fh.write(os.urandom(1024 * 1024))
    root = work / "backups"
    root.mkdir()
    configure_site(root, server, rsync_timeout=120)
    rsh = (
        f"ssh -F none -p {server.port} -i {server.client_key_path} -o BatchMode=yes "
        f"-o UserKnownHostsFile={server.known_hosts_path}"
    )

    def plain(k: int) -> tuple[int, float]:
        dest = work / f"plain{k}"
        dest.mkdir()
        argv = ["rsync", "-a", "--stats", "-e", rsh, f"127.0.0.1:{src}/", f"{dest}/"]
        proc = subprocess.Popen(
            [*argv[:2], SLOW, *argv[2:]],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        when_arrived(dest, size, lambda: os.killpg(proc.pid, signal.SIGTERM)).join()
        proc.wait()
        started = time.perf_counter()
        out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
        took = time.perf_counter() - started
        received = int(re.search(r"^Total bytes received: ([\d,]+)", out, re.M)[1].replace(",", ""))
        shutil.rmtree(dest)
        return received, took

    def ours(k: int) -> tuple[int, float]:
        host = Host.objects.create(
            name=f"web{k}", address="127.0.0.1", sources=[str(src)], rsync_options=[SLOW]
        )
        stop = threading.Event()
        when_arrived(root / host.name, size, stop.set)
        first = run_backup(host, stop=stop)
        if first.outcome != "cancelled":
            raise SystemExit(f"the interrupted run ended {first.outcome}: {first.message}")
        Host.objects.filter(pk=host.pk).update(rsync_options=[])
        host.refresh_from_db()
        started = time.perf_counter()
        second = run_backup(host)
        took = time.perf_counter() - started
        if second.outcome != "success":
            raise SystemExit(f"the resumed run ended {second.outcome}: {second.message}")
        meta = read_metadata(root / host.name / second.snapshot_name)
        shutil.rmtree(root / host.name)
        return meta.bytes_received, took

    print(
        f"workload: one {args.megabytes} MiB file, interrupted at {INTERRUPT_AT:.0%}, "
        f"then pulled again; {args.runs} rounds, 2 cores shared"
    )
    figures: dict[str, list[tuple[int, float]]] = {"plain": [], "ours": []}
    for k in range(args.runs):
        sides = [("plain", plain), ("ours", ours)]
        for key, side in sides if k % 2 == 0 else reversed(sides):
            os.sync()
            figures[key].append(side(k))
    med = {
        key: (statistics.median(b for b, _ in v), statistics.median(t for _, t in v))
        for key, v in figures.items()
    }
    print()
    print(f"{'second pull after the interruption':<46}{'received':>12}{'time':>9}")
    for label, key in (("plain rsync -a by hand (baseline)", "plain"), ("pobsync", "ours")):
        b, t = med[key]
        print(f"{label:<46}{b / 2**20:>8.1f} MiB{t:>8.2f}s")
    (pb, pt), (ob, ot) = med["plain"], med["ours"]
    print()
    print(f"ratio pobsync / baseline: bytes x{ob / pb:.2f}, time x{ot / pt:.2f}")
    print(f"saved on the retry: {(pb - ob) / 2**20:.1f} MiB of a {size / 2**20:.0f} MiB file")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
