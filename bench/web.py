"""Benchmark of the dashboard and the JSON API at 1,000 hosts, 100,000 runs and
100,000 snapshot records, on SQLite (a temporary file) or MariaDB (a throwaway
database on 127.0.0.1:3306, dropped afterwards).

    .venv/bin/python bench/web.py [--database sqlite|mariadb] [--requests 60]

Every request goes through Django's full handler and middleware (session, auth,
whitenoise, CSRF) as a logged-in staff user, via django.test.Client. The baseline for
each route is a plain indexed SELECT of the rows the page shows, timed in the same run,
interleaved with the requests. Prints median and p95 per route, the ratio to the
baseline, the query count and the target. Results: docs/performance.md ("Web").
"""

from __future__ import annotations

import argparse
import os
import resource
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# bench/queue.py would shadow the standard library's `queue` (imported by Django via
# asgiref): put the repository root, not this folder, on the path.
sys.path[:] = [str(ROOT)] + [p for p in sys.path if p not in ("", str(ROOT / "bench"))]

PROBE = "h00500"
# route -> (p95 target in ms, baseline SQL: the same rows by a plain indexed SELECT)
ROUTES: dict[str, tuple[float, str]] = {
    "/dashboard/": (200, "SELECT * FROM pobsync_models_host ORDER BY name"),
    f"/dashboard/hosts/{PROBE}/": (
        100,
        "SELECT * FROM pobsync_models_backuprun WHERE host_id = {pid} "
        "ORDER BY started_at DESC LIMIT 20",
    ),
    "/dashboard/queue/": (
        100,
        "SELECT * FROM pobsync_models_backupjob WHERE state = 'queued' "
        "ORDER BY priority, run_after, id LIMIT 200",
    ),
    "/api/status/": (100, "SELECT * FROM pobsync_models_host ORDER BY name"),
    "/api/hosts/": (100, "SELECT * FROM pobsync_models_host ORDER BY name LIMIT 50"),
    f"/api/hosts/{PROBE}/": (
        100,
        "SELECT * FROM pobsync_models_backuprun WHERE host_id = {pid} "
        "ORDER BY started_at DESC LIMIT 20",
    ),
    "/api/snapshots/": (
        100,
        "SELECT * FROM pobsync_models_snapshotrecord ORDER BY id DESC LIMIT 50",
    ),
    f"/api/snapshots/?host={PROBE}": (
        100,
        "SELECT * FROM pobsync_models_snapshotrecord WHERE host_id = {pid} "
        "ORDER BY name DESC LIMIT 50",
    ),
    "/api/runs/": (
        100,
        "SELECT * FROM pobsync_models_backuprun ORDER BY started_at DESC, id LIMIT 50",
    ),
    f"/api/runs/?host={PROBE}": (
        100,
        "SELECT * FROM pobsync_models_backuprun WHERE host_id = {pid} "
        "ORDER BY started_at DESC, id LIMIT 50",
    ),
    "/api/jobs/": (100, "SELECT * FROM pobsync_models_backupjob ORDER BY id DESC LIMIT 50"),
}


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def configure(database: str, home: Path) -> str | None:
    """Points the settings at a fresh database; returns the MariaDB name to drop."""
    os.environ["POBSYNC_HOME"] = str(home)
    os.environ["DJANGO_SETTINGS_MODULE"] = "pobsync_models.settings"
    if database == "sqlite":
        os.environ["DATABASE_URL"] = f"sqlite:///{home / 'bench.sqlite3'}"
        return None
    from tests.support.mariadb import admin_connection, database_url

    name = f"pobsync_bench_{secrets.token_hex(4)}"
    conn = admin_connection()
    conn.cursor().execute(
        f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
    )
    conn.close()
    os.environ["DATABASE_URL"] = database_url(name)
    return name


def drop(name: str | None) -> None:
    if name is None:
        return
    from tests.support.mariadb import admin_connection

    conn = admin_connection()
    conn.cursor().execute(f"DROP DATABASE IF EXISTS `{name}`")
    conn.close()


def run(args: argparse.Namespace) -> None:
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from pobsync_models.models import BackupJob, Host
    from tests.support.webdata import seed_many

    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    hosts = seed_many(
        timezone.now(),
        hosts=args.hosts,
        runs_per_host=args.runs // args.hosts,
        snapshots_per_host=args.snapshots // args.hosts,
    )
    probe = next(h for h in hosts if h.name == PROBE)
    job = BackupJob.objects.create(host=probe, state="running", run_after=timezone.now())
    Host.objects.filter(pk=probe.pk).update(running_job=job)
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    seeded = time.perf_counter() - started
    staff = get_user_model().objects.create_user("bench", "", "bench-pw", is_staff=True)
    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(staff)

    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"load average before: {load}; workload: {args.hosts} hosts, {args.runs} runs, "
        f"{args.snapshots} snapshots on "
        f"{connection.vendor} (seeded in {seeded:.1f} s); {args.requests} requests per route, "
        "interleaved with the baseline"
    )
    timings: dict[str, list[float]] = {url: [] for url in ROUTES}
    cpu: dict[str, list[float]] = {url: [] for url in ROUTES}
    baselines: dict[str, list[float]] = {url: [] for url in ROUTES}
    queries: dict[str, int] = {}
    for url in ROUTES:  # warm-up: caches, connection, compiled templates
        with CaptureQueriesContext(connection) as ctx:
            response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
        queries[url] = len(ctx.captured_queries)
    for _ in range(args.requests):
        for url, (_target, sql) in ROUTES.items():
            t0, c0 = time.perf_counter(), time.process_time()
            client.get(url)
            timings[url].append((time.perf_counter() - t0) * 1000)
            cpu[url].append((time.process_time() - c0) * 1000)
            t0 = time.perf_counter()
            with connection.cursor() as cursor:
                cursor.execute(sql.format(pid=probe.pk))
                cursor.fetchall()
            baselines[url].append((time.perf_counter() - t0) * 1000)

    header = (
        f"{'route':34} {'queries':>7} {'median ms':>9} {'p95 ms':>8} {'cpu ms':>7} "
        f"{'base ms':>8} {'ratio':>7} {'target':>7}  verdict"
    )
    print(header)
    print("-" * len(header))
    missed = 0
    for url, (target, _sql) in ROUTES.items():
        med, tail = statistics.median(timings[url]), p95(timings[url])
        base = statistics.median(baselines[url])
        ok = tail < target
        missed += not ok
        print(
            f"{url:34} {queries[url]:>7} {med:>9.1f} {tail:>8.1f} "
            f"{statistics.median(cpu[url]):>7.1f} {base:>8.2f} "
            f"{med / base:>6.0f}x {f'<{target:.0f}':>7}  {'ok' if ok else 'MISSED'}"
        )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"peak RSS {peak:.0f} MiB; load average {load} on {os.cpu_count()} CPUs; "
        f"{missed} target(s) missed"
    )
    print("cpu ms: this process's CPU time per request (median), which other processes'")
    print("load does not inflate; wall-clock figures do include waiting for a CPU.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", choices=("sqlite", "mariadb"), default="sqlite")
    parser.add_argument("--hosts", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--snapshots", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=60)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pobsync-bench-") as home:
        name = configure(args.database, Path(home))
        try:
            run(args)
        finally:
            drop(name)


if __name__ == "__main__":
    main()
