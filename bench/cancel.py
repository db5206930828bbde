"""Benchmark: how fast `pobsync cancel` stops a running backup (issue 10, item 5).

    .venv/bin/python bench/cancel.py [--cancels 10]

Workload: one real runner process (`pobsync runner --loop`, production heartbeat of
60 s and lease TTL of 300 s) backing up a 16 MB file over a loopback sshd, slowed with
--bwlimit so each backup would take a minute. Each round enqueues a backup, waits until
rsync has been sending for a second, runs `pobsync cancel <job>` as an operator would,
and times until no rsync process of that backup is left (the local one and the
sshd-side server). Figures: from invoking `pobsync cancel` (its own start-up included)
and from its return (the flag is committed). Baseline, measured in the same run: the
same rsync started by hand and stopped by hand with SIGTERM (`kill`), the floor for any
stop. Before the read-only cancel poll the bound was one heartbeat: up to 60 s.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:] = [str(REPO)] + [p for p in sys.path if p not in ("", str(REPO / "bench"))]

PRODUCTION = {"POBSYNC_HEARTBEAT_INTERVAL": "60", "POBSYNC_LEASE_TTL": "300"}
BWLIMIT = "--bwlimit=256"  # KiB/s: 16 MB take a minute


def gone_after(markers: list[str], since: float, timeout: float = 90.0) -> float:
    """Seconds from `since` until no rsync process (local or sshd-side) mentions any of
    `markers` in its argv."""
    from tests.queue.procs import rsync_processes

    while any(rsync_processes(m) for m in markers):
        if time.monotonic() - since > timeout:
            raise SystemExit(f"rsync still running {timeout:.0f} s after the stop")
        time.sleep(0.01)
    return time.monotonic() - since


def wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.02)
    return value


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cancels", type=int, default=10)
    args = ap.parse_args()
    from tests.queue.procs import ProcDB, engine_config, rsync_processes
    from tests.support.sshd import running_sshd

    work = Path(tempfile.mkdtemp(prefix="pobsync-bench-cancel-"))
    try:
        with running_sshd(work / "sshd") as server:
            src = work / "remote" / "data"
            src.mkdir(parents=True)
            (src / "big.bin").write_bytes(os.urandom(16 * 1024 * 1024))
            root = work / "backups"
            root.mkdir()
            db = ProcDB("sqlite", f"sqlite:///{work / 'bench.sqlite3'}", work)
            db.tool("migrate")
            db.tool(
                "configure",
                config={**engine_config(root, server), "rsync_timeout": 120},
                hosts=[{"name": "web1", "sources": [str(src)], "rsync_options": [BWLIMIT]}],
            )
            print(f"workload: {args.cancels} cancels of a 16 MB backup at 256 KiB/s, 2 cores")
            runner = db.spawn(
                work / "runner.log", "runner", "--loop", "--interval", "0.5", **PRODUCTION
            )
            try:
                return run(args, db, server, src, work, runner, rsync_processes)
            finally:
                db.stop_all()
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(args, db, server, src, work, runner, rsync_processes) -> int:
    from_invoke, from_return, by_hand = [], [], []
    for k in range(args.cancels):
        job = db.tool("enqueue", host="web1")["job"]
        wait(lambda: rsync_processes(str(src)), 60, "rsync to start")
        time.sleep(1.0)
        invoked = time.monotonic()
        out = db.pobsync("cancel", str(job), **PRODUCTION)
        returned = time.monotonic()
        if out.returncode != 0:
            raise SystemExit(f"pobsync cancel failed: {out.stderr}")
        gone_after([str(src)], returned)
        from_invoke.append(time.monotonic() - invoked)
        from_return.append(time.monotonic() - returned)

        def finished(j=job) -> str | None:
            state = next(x for x in db.tool("snapshot")["jobs"] if x["id"] == j)["state"]
            return None if state == "running" else state

        state = wait(finished, 30, "the job to be recorded")
        if state != "cancelled":
            raise SystemExit(f"job {job} ended {state}, not cancelled")
        by_hand.append(stop_by_hand(server, src, work / f"hand{k}"))
    runs = db.tool("snapshot")["runs"]
    outcomes = {r["outcome"] for r in runs}
    print(f"runs recorded: {len(runs)}, outcomes {sorted(outcomes)}")
    print()
    print(f"{'stop':<44}{'median':>9}{'max':>9}")
    rows = (
        ("rsync killed by hand (kill -TERM), baseline", by_hand),
        ("pobsync cancel, from its return", from_return),
        ("pobsync cancel, from invoking it", from_invoke),
    )
    for label, values in rows:
        print(f"{label:<44}{statistics.median(values):>8.2f}s{max(values):>8.2f}s")
    base = statistics.median(by_hand)
    print()
    print(
        f"ratio to the baseline (medians): from return x{statistics.median(from_return) / base:.1f}"
        f", from invoking x{statistics.median(from_invoke) / base:.1f}"
    )
    return 0


def stop_by_hand(server, src: Path, dest: Path) -> float:
    """The same slow pull started and stopped by hand; seconds until both ends are gone."""
    dest.mkdir()
    rsh = (
        f"ssh -F none -p {server.port} -i {server.client_key_path} -o BatchMode=yes "
        f"-o UserKnownHostsFile={server.known_hosts_path}"
    )
    proc = subprocess.Popen(
        ["rsync", "-a", BWLIMIT, "-e", rsh, f"127.0.0.1:{src}/", f"{dest}/"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    wait(lambda: any(p.name.startswith(".big.bin.") for p in dest.iterdir()), 60, "hand rsync")
    time.sleep(1.0)
    stopped = time.monotonic()
    os.kill(proc.pid, signal.SIGTERM)
    proc.wait()
    return gone_after([str(dest), str(src)], stopped)


if __name__ == "__main__":
    raise SystemExit(main())
