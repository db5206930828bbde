"""Benchmark: `pobsync` CLI start-up against `python3 -c pass`, measured in the same run.

    .venv/bin/python bench/startup.py [--rounds N] [--pobsync PATH]

Each command runs as its own process, as an operator types it, against a migrated
SQLite database with one configured host; the commands are interleaved (the order
alternates each round) and the median wall time of N rounds is printed with its ratio
to `python3 -c pass` (the venv's interpreter, same flags). Targets (issue 16): help
< 0.15 s, listings < 0.4 s. --pobsync times another build's executable (an older
checkout, say) the same way.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
POBSYNC = str(BIN / "pobsync")


def cases(pobsync: str) -> list[tuple[str, list[str], float | None]]:
    return [
        ("python3 -c pass", [sys.executable, "-c", "pass"], None),
        ("pobsync --help", [pobsync, "--help"], 0.15),
        ("pobsync hosts --help", [pobsync, "hosts", "--help"], 0.15),
        ("pobsync backup --help", [pobsync, "backup", "--help"], 0.15),
        ("pobsync hosts", [pobsync, "hosts"], 0.4),
        ("pobsync jobs", [pobsync, "jobs"], 0.4),
        ("pobsync show-host web1", [pobsync, "show-host", "web1"], 0.4),
    ]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--pobsync", default=POBSYNC, help="the executable to time")
    args = ap.parse_args()
    CASES = cases(args.pobsync)  # noqa: N806
    work = Path(tempfile.mkdtemp(prefix="pobsync-startup-"))
    env = {
        **os.environ,
        "POBSYNC_HOME": str(work),
        "DATABASE_URL": f"sqlite:///{work / 'db.sqlite3'}",
        "POBSYNC_SECRET_KEY": "bench-only",
    }
    try:
        for setup in (
            ["django", "migrate", "-v0"],
            ["configure-global", "--backup-root", str(work / "backups")],
            ["configure-host", "web1", "--address", "127.0.0.1", "--source", "/etc"],
        ):
            subprocess.run([args.pobsync, *setup], env=env, check=True, stdout=subprocess.DEVNULL)
        times: dict[str, list[float]] = {label: [] for label, _, _ in CASES}
        for k in range(args.rounds):
            for label, argv, _ in CASES if k % 2 == 0 else reversed(CASES):
                started = time.perf_counter()
                subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL)
                times[label].append(time.perf_counter() - started)
        load = os.getloadavg()
        print(
            f"{args.rounds} interleaved rounds, median wall time; python {sys.version.split()[0]},"
            f" {os.cpu_count()} CPUs, load average {load[0]:.2f} at the end"
        )
        base = statistics.median(times["python3 -c pass"])
        print(f"{'command':<26}{'median':>9}{'x pass':>8}{'target':>9}  verdict")
        for label, _, target in CASES:
            med = statistics.median(times[label])
            verdict = "" if target is None else ("met" if med < target else "MISSED")
            goal = "" if target is None else f"< {target:.2f}s"
            print(f"{label:<26}{med:>8.3f}s{med / base:>8.2f}{goal:>9}  {verdict}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
