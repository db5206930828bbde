"""Alerts benchmark: the scheduler's notification pass (rules + outbox planning,
pobsync_models.alerts.notify.evaluate) over 10,000 hosts with nothing to send and with
1,000 transitions at once, against a plain scan of the host table in the same run; and
/metrics latency (p50/p95) at 1,000 hosts against the same plain scan at 1,000 hosts.

    .venv/bin/python bench/alerts.py                      # SQLite, about a minute
    .venv/bin/python bench/alerts.py --database-url mysql://root@127.0.0.1:3306/pobsync_bench_alerts

A MariaDB database named in --database-url is created if missing and dropped after.
Targets (issue 14): each notification pass under 1 s at 10,000 hosts; /metrics p95
under 100 ms at 1,000 hosts. Figures are medians of --repeats interleaved runs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

# bench/queue.py would shadow the standard library's `queue`: keep bench/ off sys.path.
sys.path[:] = [p for p in sys.path if p not in ("", __file__.rsplit("/", 1)[0])]
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _setup(url: str | None) -> str | None:
    home = tempfile.mkdtemp(prefix="pobsync-bench-alerts-")
    os.environ["POBSYNC_HOME"] = home
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pobsync_models.settings")
    created = None
    if url:
        import MySQLdb

        name = url.rsplit("/", 1)[1]
        conn = MySQLdb.connect(host="127.0.0.1", port=3306, user="root", passwd="")
        conn.cursor().execute(f"CREATE DATABASE IF NOT EXISTS `{name}` CHARACTER SET utf8mb4")
        conn.close()
        os.environ["DATABASE_URL"] = url
        created = name
    else:
        os.environ["DATABASE_URL"] = f"sqlite:///{home}/bench.sqlite3"
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    return created


def _drop(name: str | None) -> None:
    if name:
        import MySQLdb

        conn = MySQLdb.connect(host="127.0.0.1", port=3306, user="root", passwd="")
        conn.cursor().execute(f"DROP DATABASE IF EXISTS `{name}`")
        conn.close()


def _seed(hosts: int) -> None:
    from django.utils import timezone

    from pobsync_models.models import Channel, GlobalConfig, Host, Schedule

    GlobalConfig(pk=1, backup_root=tempfile.gettempdir()).save()
    now = timezone.now()
    Host.objects.bulk_create(
        [
            Host(
                name=f"host{i:05d}",
                address="127.0.0.1",
                sources=["/srv"],
                last_run_outcome="success",
                last_run_at=now - timedelta(hours=2),
                last_success_at=now - timedelta(hours=1, minutes=55),
            )
            for i in range(hosts)
        ],
        batch_size=1000,
    )
    Schedule.objects.bulk_create(
        [
            Schedule(host_id=pk, cron="15 2 * * *")
            for pk in Host.objects.values_list("pk", flat=True)
        ],
        batch_size=1000,
    )
    Channel.objects.create(name="ops", kind="email", target="ops@example.com")


def _plain_scan() -> float:
    from django.db import connection

    from pobsync_models.models import Host

    start = time.perf_counter()
    with connection.cursor() as cursor:
        columns = "id, name, enabled, created_at, last_run_outcome, last_success_at"
        table = Host._meta.db_table
        cursor.execute(f"SELECT {columns}, overdue_after_hours FROM {table}")  # noqa: S608
        cursor.fetchall()
    return time.perf_counter() - start


def _reset_alerts() -> None:
    from pobsync_models.models import Delivery, Event, HostAlertState, RoutedEvent

    for model in (Delivery, RoutedEvent, HostAlertState, Event):
        model.objects.all().delete()


def _pass(now) -> tuple[float, object]:
    from pobsync_models.alerts import notify

    start = time.perf_counter()
    result = notify.evaluate(now)
    return time.perf_counter() - start, result


def bench_pass(hosts: int, transitions: int, repeats: int) -> None:
    from django.utils import timezone

    from pobsync_models.models import Host

    _seed(hosts)
    now = timezone.now()
    _pass(now)  # warm up (first pass creates nothing: every host is fine)
    quiet, scans = [], []
    for _ in range(repeats):
        scans.append(_plain_scan())
        seconds, result = _pass(now)
        assert result.transitions == 0 and result.planned == 0, result
        quiet.append(seconds)
    busy = []
    ids = list(Host.objects.order_by("pk").values_list("pk", flat=True)[:transitions])
    for _ in range(repeats):
        _reset_alerts()
        Host.objects.filter(pk__in=ids).update(last_run_outcome="failed")
        scans.append(_plain_scan())
        seconds, result = _pass(now)
        assert result.transitions == transitions and result.planned == transitions, result
        busy.append(seconds)
        Host.objects.filter(pk__in=ids).update(last_run_outcome="success")
    scan = statistics.median(scans)
    print(f"workload: {hosts} hosts with a schedule each, 1 email channel, {repeats} runs")
    print(f"plain scan of the host table (baseline):     {scan * 1000:8.1f} ms")
    q, b = statistics.median(quiet), statistics.median(busy)
    print(f"notification pass, nothing to send:          {q * 1000:8.1f} ms  ratio {q / scan:6.1f}")
    print(
        f"notification pass, {transitions} transitions at once: {b * 1000:8.1f} ms  "
        f"ratio {b / scan:6.1f}  ({transitions} events, {transitions} deliveries planned)"
    )


def bench_metrics(hosts: int, requests: int) -> None:
    from django.test import Client
    from django.utils import timezone

    from pobsync_models.alerts import tokens
    from pobsync_models.models import BackupRun, Host, SnapshotRecord

    now = timezone.now()
    all_hosts = list(Host.objects.order_by("pk")[:hosts])
    Host.objects.exclude(pk__in=[h.pk for h in all_hosts]).delete()
    BackupRun.objects.bulk_create(
        [
            BackupRun(
                host=h,
                outcome="success",
                started_at=h.last_run_at,
                finished_at=h.last_run_at + timedelta(minutes=3),
                bytes_transferred=1000,
                files_transferred=10,
            )
            for h in all_hosts
        ],
        batch_size=1000,
    )
    SnapshotRecord.objects.bulk_create(
        [
            SnapshotRecord(
                host=h,
                name=f"2026-01-{d:02d}T000000Z",
                path=f"/b/{h.name}/{d}",
                state="complete",
                started_at=now,
                finished_at=now,
            )
            for h in all_hosts
            for d in range(1, 6)
        ],
        batch_size=2000,
    )
    _, token = tokens.create("bench")
    client = Client(HTTP_AUTHORIZATION=f"Bearer {token}", HTTP_HOST="127.0.0.1")
    assert client.get("/metrics").status_code == 200
    times, scans = [], []
    for _ in range(requests):
        scans.append(_plain_scan())
        start = time.perf_counter()
        response = client.get("/metrics")
        times.append(time.perf_counter() - start)
        assert response.status_code == 200
    times.sort()
    p50, p95 = statistics.median(times), times[int(len(times) * 0.95) - 1]
    scan = statistics.median(scans)
    print(f"/metrics at {hosts} hosts ({len(response.content)} bytes), {requests} requests:")
    print(f"plain scan of the host table (baseline):     {scan * 1000:8.1f} ms")
    print(
        f"/metrics p50 {p50 * 1000:6.1f} ms, p95 {p95 * 1000:6.1f} ms  ratio p95 {p95 / scan:6.1f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="a mysql:// URL (default: a fresh SQLite file)")
    parser.add_argument("--hosts", type=int, default=10_000)
    parser.add_argument("--transitions", type=int, default=1_000)
    parser.add_argument("--metrics-hosts", type=int, default=1_000)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    created = _setup(args.database_url)
    try:
        bench_pass(args.hosts, args.transitions, args.repeats)
        bench_metrics(args.metrics_hosts, args.requests)
    finally:
        _drop(created)


if __name__ == "__main__":
    main()
