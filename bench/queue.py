"""Queue benchmark: claim+finish throughput and claim latency through the real protocol
(pobsync_models.queue) with 1, 2, 4 and 8 processes, on SQLite and MariaDB, at queue
depths of 100 and 10,000; and the scheduler's tick time and peak memory with 10,000
enabled schedules.

    .venv/bin/python bench/queue.py                 # both databases, ~4 minutes on 2 cores
    .venv/bin/python bench/queue.py --databases sqlite --repeats 1 --seconds 1   # quick

Each cycle is claim() + finish() of one job, followed by one insert of a replacement job
so the depth stays constant; the latency figures time claim() alone (each process
connects before the clock starts), cycles/s counts all three. The baseline is the same
workload with 1 process; the ratio is N processes / 1 process. Figures are medians of
--repeats interleaved runs.
Targets (issue 4): throughput grows from 1 to 4 processes on MariaDB; p99 claim latency
under 50 ms at depth 10,000; a 10,000-schedule tick under 2 s.
"""

from __future__ import annotations

import sys

# This file is named queue.py (as the issue asks); keep its folder off sys.path so the
# standard library's `queue` (used by multiprocessing and asgiref) is not shadowed.
sys.path[:] = [p for p in sys.path if p not in ("", __file__.rsplit("/", 1)[0])]

import argparse
import json
import multiprocessing as mp
import os
import resource
import secrets
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROCS = (1, 2, 4, 8)
DEPTHS = (100, 10_000)
SCHEDULES = 10_000


# -- inside one database's subprocess ------------------------------------------------


def _django(url: str) -> None:
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pobsync_models.settings")
    os.environ.setdefault("POBSYNC_HOME", tempfile.mkdtemp(prefix="pobsync-bench-home-"))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)


def _reset() -> None:
    from pobsync_models.models import BackupJob, BackupRun, Host, Schedule

    Host.objects.update(running_job=None)
    for model in (BackupRun, BackupJob, Schedule, Host):
        model.objects.all().delete()


def _seed(depth: int) -> None:
    from django.utils import timezone

    from pobsync_models.models import BackupJob, Host

    _reset()
    hosts = Host.objects.bulk_create(
        Host(name=f"b{i}", address="127.0.0.1") for i in range(min(depth, 500))
    )
    now = timezone.now()
    BackupJob.objects.bulk_create(
        (BackupJob(host=hosts[i % len(hosts)], run_after=now) for i in range(depth)),
        batch_size=1000,
    )


def _worker(index: int, seconds: float, start, results) -> None:
    from django.db import connection
    from django.utils import timezone

    from pobsync_models.models import BackupJob
    from pobsync_models.queue import claim, finish

    worker_id = f"bench:{os.getpid()}"
    latencies, cycles, empty = [], 0, 0
    # Connect (and run Django's session set-up) before the clock starts: otherwise each
    # process's first claim carries the connection set-up, which lands in the p99.
    connection.ensure_connection()
    start.wait()
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        t0 = time.perf_counter()
        lease = claim(worker_id)
        latencies.append(time.perf_counter() - t0)
        if lease is None:
            empty += 1
            continue
        finish(lease, BackupJob.State.SUCCEEDED)
        BackupJob.objects.create(host_id=lease.host_id, run_after=timezone.now())
        cycles += 1
    results.put({"cycles": cycles, "latencies": latencies, "empty": empty})


def _throughput(procs: int, seconds: float) -> dict:
    from django.db import connections

    connections.close_all()
    ctx = mp.get_context("fork")
    start, results = ctx.Event(), ctx.Queue()
    workers = [ctx.Process(target=_worker, args=(i, seconds, start, results)) for i in range(procs)]
    for w in workers:
        w.start()
    time.sleep(0.3)
    start.set()
    parts = [results.get(timeout=seconds + 120) for _ in workers]
    for w in workers:
        w.join()
    latencies = sorted(x for p in parts for x in p["latencies"])
    cycles = sum(p["cycles"] for p in parts)
    return {
        "cycles_per_s": cycles / seconds,
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        "empty_claims": sum(p["empty"] for p in parts),
    }


def _tick_bench() -> dict:
    from datetime import timedelta

    from django.utils import timezone

    from pobsync_models.models import Host, Schedule
    from pobsync_scheduler.tick import tick

    _reset()
    hosts = Host.objects.bulk_create(
        (Host(name=f"s{i}", address="127.0.0.1") for i in range(SCHEDULES)), batch_size=1000
    )
    Schedule.objects.bulk_create(
        (Schedule(host=h, cron=f"{i % 60} 2 * * *") for i, h in enumerate(hosts)),
        batch_size=1000,
    )
    now = timezone.now()
    out = {}
    t0 = time.perf_counter()
    first = tick(now, limit=SCHEDULES + 1)
    out["first_tick_s"] = time.perf_counter() - t0  # computes 10,000 NULL next_run_at
    t0 = time.perf_counter()
    steady = tick(now + timedelta(seconds=1), limit=SCHEDULES + 1)
    out["steady_tick_s"] = time.perf_counter() - t0  # nothing due
    t0 = time.perf_counter()
    due = tick(now + timedelta(days=1, hours=1), limit=SCHEDULES + 1)
    out["all_due_tick_s"] = time.perf_counter() - t0  # every schedule due: 10,000 jobs
    out["counts"] = [first.initialised, steady.enqueued, due.enqueued]
    out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def run_database(url: str, repeats: int, seconds: float) -> dict:
    _django(url)
    import django.db

    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    runs: dict[str, list[dict]] = {}
    for depth in DEPTHS:
        _seed(depth)
        for _ in range(repeats):  # interleave repeats over process counts
            for procs in PROCS:
                runs.setdefault(f"{depth}:{procs}", []).append(_throughput(procs, seconds))
    django.db.connections.close_all()
    medians = {
        key: {m: statistics.median(r[m] for r in results) for m in results[0]}
        for key, results in runs.items()
    }
    return {"throughput": medians, "tick": _tick_bench(), "rss_after_setup_mib": base_rss}


# -- orchestration -------------------------------------------------------------------


def _mariadb_url() -> tuple[str, object]:
    import MySQLdb

    name = f"pobsync_bench_{secrets.token_hex(4)}"
    admin = MySQLdb.connect(host="127.0.0.1", port=3306, user="root", passwd="")
    admin.cursor().execute(
        f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
    )

    def drop() -> None:
        admin.cursor().execute(f"DROP DATABASE IF EXISTS `{name}`")
        admin.close()

    return f"mysql://root@127.0.0.1:3306/{name}", drop


def _report(database: str, result: dict, seconds: float, repeats: int) -> None:
    print(f"\n== {database}: claim+finish cycles/s ({repeats} x {seconds:g} s, median)")
    print(f"{'depth':>6} {'procs':>5} {'cycles/s':>9} {'ratio':>6} {'p50 ms':>7} {'p99 ms':>7}")
    tp = result["throughput"]
    for depth in DEPTHS:
        base = tp[f"{depth}:1"]["cycles_per_s"]
        for procs in PROCS:
            r = tp[f"{depth}:{procs}"]
            ratio = r["cycles_per_s"] / base if base else float("nan")
            print(
                f"{depth:>6} {procs:>5} {r['cycles_per_s']:>9.0f} {ratio:>6.2f} "
                f"{r['p50_ms']:>7.1f} {r['p99_ms']:>7.1f}"
            )
    t = result["tick"]
    print(
        f"scheduler tick, {SCHEDULES} enabled schedules: steady (none due) "
        f"{t['steady_tick_s']:.3f} s; first (compute next_run_at) {t['first_tick_s']:.2f} s; "
        f"all due (enqueue {t['counts'][2]}) {t['all_due_tick_s']:.2f} s; "
        f"peak RSS {t['peak_rss_mib']:.0f} MiB (after Django setup "
        f"{result['rss_after_setup_mib']:.0f} MiB)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--databases", nargs="+", default=["sqlite", "mariadb"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--_run", help=argparse.SUPPRESS)  # internal: one database
    args = parser.parse_args()
    if args._run:
        print(json.dumps(run_database(args._run, args.repeats, args.seconds)))
        return
    print(
        f"workload: claim()+finish() per cycle (+1 refill insert), processes {PROCS}, "
        f"depths {DEPTHS}; baseline = 1 process; python {sys.version.split()[0]}, "
        f"{os.cpu_count()} CPUs"
    )
    for database in args.databases:
        drop = None
        if database == "sqlite":
            url = f"sqlite:///{tempfile.mkdtemp(prefix='pobsync-bench-')}/bench.sqlite3"
        else:
            url, drop = _mariadb_url()
        try:
            done = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--_run",
                    url,
                    "--repeats",
                    str(args.repeats),
                    "--seconds",
                    str(args.seconds),
                ],
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode != 0:
                sys.exit(f"{database} run failed:\n{done.stderr[-3000:]}")
            _report(
                database,
                json.loads(done.stdout.strip().splitlines()[-1]),
                args.seconds,
                args.repeats,
            )
        finally:
            if drop:
                drop()


if __name__ == "__main__":
    main()
