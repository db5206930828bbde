"""Benchmark: `pobsync backup` against raw rsync with the same options, over a real sshd.

    .venv/bin/python bench/backup.py [--files N --megabytes M --runs K]

Workload: a generated source tree (default 20,000 files, 500 MB) served by a loopback
sshd (tests/support/sshd.py). Baseline: rsync with exactly the argv pobsync builds
(-a --numeric-ids --relative --link-dest ..., same ssh options), output discarded.
Ours: `pobsync backup <host>` as a separate process (Django start-up included) and
run_backup() in-process (what a long-running runner does). Full and unchanged
incremental backups, interleaved (the order alternates each round), median of K runs.

Also: pobsync's own peak RSS (RUSAGE_SELF of the pobsync process; rsync excluded) for
the full source and for a source with a tenth of the files; retention planning over
100,000 records; discovery of 1,000 snapshot directories.
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

REPO = Path(__file__).resolve().parents[1]
# bench/queue.py would shadow the standard library's `queue` (imported by Django via
# asgiref): put the repository root, not this folder, on the path.
sys.path[:] = [str(REPO)] + [p for p in sys.path if p not in ("", str(REPO / "bench"))]
BIN = Path(sys.executable).parent


def generate(src: Path, files: int, megabytes: int) -> None:
    """`files` files in 100-file directories, sizes varying around the mean."""
    total = megabytes * 1024 * 1024
    mean = max(total // max(files, 1), 1)
    block = os.urandom(4 * 1024 * 1024)
    written = 0
    for i in range(files):
        d = src / f"d{i // 100:04d}"
        if i % 100 == 0:
            d.mkdir(parents=True, exist_ok=True)
        size = mean // 2 + (i * 7919) % (mean + 1)
        size = min(size, total - written) if i < files - 1 else max(total - written, 0)
        offset = (i * 4099) % (len(block) - min(size, len(block)) + 1)
        with open(d / f"f{i:06d}.dat", "wb") as fh:
            left = size
            while left > 0:
                chunk = block[offset : offset + min(left, len(block) - offset)]
                fh.write(chunk)
                left -= len(chunk)
                offset = 0
        written += size


def timed(fn) -> float:
    # Flush the previous step's dirty pages first (untimed): otherwise whichever step
    # runs next pays for the last one's writeback, and a 500 MB full backup swings.
    os.sync()
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", type=int, default=20_000)
    ap.add_argument("--megabytes", type=int, default=500)
    # even, so each side goes first equally often (the order alternates per round)
    ap.add_argument("--runs", type=int, default=4)
    ap.add_argument("--workdir", help="where to build the source and backups (default: a tmp dir)")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="pobsync-bench-", dir=args.workdir))
    home = work / "home"
    home.mkdir()
    os.environ.update(
        {
            "POBSYNC_HOME": str(home),
            "DATABASE_URL": f"sqlite:///{home / 'bench.sqlite3'}",
            "DJANGO_SETTINGS_MODULE": "pobsync_models.settings",
        }
    )
    import django

    django.setup()
    from django.core.management import call_command

    from tests.support.sshd import running_sshd

    try:
        call_command("migrate", verbosity=0)
        with running_sshd(work / "sshd") as server:
            return run(args, work, server)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(args, work: Path, server) -> int:
    from pobsync_models.models import GlobalConfig, Host
    from pobsync_models.specs import host_spec
    from pobsync_runner.backup import run_backup
    from pobsync_runner.rsync import rsync_argv

    src, small = work / "src", work / "small"
    print(f"workload: {args.files} files, {args.megabytes} MB, {args.runs} runs, 2 cores shared")
    print(
        f"generating source ... ({timed(lambda: generate(src, args.files, args.megabytes)):.1f} s)"
    )
    generate(small, max(args.files // 10, 1), max(args.megabytes // 10, 1))
    root = work / "backups"
    root.mkdir()
    raw_root = work / "raw"
    raw_root.mkdir()
    config = GlobalConfig(
        pk=1,
        backup_root=str(root),
        ssh_user=server.user,
        ssh_port=server.port,
        ssh_key_path=str(server.client_key_path),
        known_hosts_path=str(server.known_hosts_path),
    )
    config.save()

    def host(name: str, source: Path) -> Host:
        return Host.objects.create(name=name, address="127.0.0.1", sources=[str(source)])

    def raw(dest: Path, link: Path | None, spec) -> None:
        argv = rsync_argv(spec, dest, link_dest=link)
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)

    def cli_backup(name: str) -> int:
        """Runs `pobsync backup`; returns its own peak RSS in KiB."""
        r, w = os.pipe()
        proc = subprocess.Popen(
            [sys.executable, str(REPO / "bench" / "_pobsync_rss.py"), "backup", name],
            pass_fds=(w,),
            stdout=subprocess.DEVNULL,
            env={
                **os.environ,
                "PATH": f"{BIN}:{os.environ['PATH']}",
                "POBSYNC_BENCH_RSS_FD": str(w),
            },
        )
        os.close(w)
        code = proc.wait()
        peak = os.read(r, 100)
        os.close(r)
        if code != 0:
            raise SystemExit(f"pobsync backup {name} failed ({code})")
        return int(peak)

    warm = host("warm", src)
    raw(raw_root / "warm", None, host_spec(warm, config))  # page cache warm for everyone
    shutil.rmtree(raw_root / "warm")

    times: dict[str, list[float]] = {
        k: [] for k in ("raw_full", "cli_full", "raw_inc", "cli_inc", "lib_full", "lib_inc")
    }
    rss: list[int] = []

    def one_round(k: int) -> None:
        h_cli, h_lib = host(f"cli{k}", src), host(f"lib{k}", src)
        spec = host_spec(h_cli, config)
        full, inc = raw_root / f"full{k}", raw_root / f"inc{k}"
        full.mkdir()
        inc.mkdir()
        steps_full = [
            ("raw_full", lambda: raw(full, None, spec)),
            ("cli_full", lambda: rss.append(cli_backup(h_cli.name))),
            ("lib_full", lambda: run_backup(h_lib)),
        ]
        steps_inc = [
            ("raw_inc", lambda: raw(inc, full, spec)),
            ("cli_inc", lambda: rss.append(cli_backup(h_cli.name))),
            ("lib_inc", lambda: run_backup(h_lib)),
        ]
        for steps in (steps_full, steps_inc):
            for key, step in steps if k % 2 == 0 else list(reversed(steps)):
                times[key].append(timed(step))
        for path in (full, inc, root / h_cli.name, root / h_lib.name):
            shutil.rmtree(path, ignore_errors=True)

    for k in range(args.runs):
        one_round(k)

    med = {k: statistics.median(v) for k, v in times.items()}
    print()
    head = ("backup", "raw rsync", "pobsync CLI", "ratio", "run_backup()", "ratio")
    print(f"{head[0]:<22}{head[1]:>11}{head[2]:>13}{head[3]:>7}{head[4]:>14}{head[5]:>7}")
    for label, key in (("full", "full"), ("unchanged incremental", "inc")):
        r, c, lib = med[f"raw_{key}"], med[f"cli_{key}"], med[f"lib_{key}"]
        print(f"{label:<22}{r:>10.2f}s{c:>12.2f}s{c / r:>7.2f}{lib:>13.2f}s{lib / r:>7.2f}")
    small_host = host("small", small)
    small_rss = cli_backup(small_host.name)
    print()
    print(
        f"pobsync peak RSS (own process, rsync excluded): {max(rss) / 1024:.1f} MB with "
        f"{args.files} files, {small_rss / 1024:.1f} MB with {max(args.files // 10, 1)} files"
    )
    bench_retention()
    bench_discovery(work)
    return 0


def bench_retention() -> None:
    from datetime import UTC, datetime, timedelta

    from pobsync_models.retention import Snapshot, plan_retention
    from pobsync_models.specs import RetentionPolicy, SnapshotName

    start = datetime(2015, 1, 1, tzinfo=UTC)
    records = [
        Snapshot(str(SnapshotName.for_time(start + timedelta(hours=i))), "complete")
        for i in range(100_000)
    ]
    policy = RetentionPolicy(keep_last=5, keep_hourly=48, keep_daily=14, keep_weekly=8,
                             keep_monthly=24, keep_yearly=10)  # fmt: skip
    now = datetime(2027, 1, 1, tzinfo=UTC)
    seconds = statistics.median(
        timed(lambda: plan_retention(records, policy, now)) for _ in range(3)
    )
    print(f"retention planning, 100,000 records: {seconds:.2f} s (median of 3)")


def bench_discovery(work: Path) -> None:
    from datetime import UTC, datetime, timedelta

    from pobsync_models.models import Host
    from pobsync_models.specs import SnapshotName
    from pobsync_runner.discovery import discover
    from pobsync_runner.snapshots import SnapshotMeta, write_metadata

    root = work / "disc"
    host = Host.objects.create(name="many", address="127.0.0.1", sources=["/etc"])
    start = datetime(2024, 1, 1, tzinfo=UTC)
    previous = ""
    for i in range(1000):
        name = str(SnapshotName.for_time(start + timedelta(hours=i)))
        path = root / "many" / name / "etc"
        path.mkdir(parents=True)
        (path / "hosts").write_text("127.0.0.1 localhost\n")
        meta = SnapshotMeta(name=name, host="many", state="complete", started_at=start.isoformat(),
                            base_name=previous, files_total=1, sources=("/etc",))  # fmt: skip
        write_metadata(path.parent, meta)
        previous = name
    first = timed(lambda: discover([host], root))
    again = timed(lambda: discover([host], root))
    print(f"discovery, 1,000 snapshot dirs: {first:.2f} s first run, {again:.2f} s unchanged")


if __name__ == "__main__":
    sys.exit(main())
