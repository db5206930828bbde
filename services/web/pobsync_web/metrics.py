"""/metrics: pobsync's state in the Prometheus text format, rendered by prometheus-client.

Label cardinality is bounded: per-host series carry only the host name (and, for the
last outcome, one of four outcomes); queue and delivery series a fixed state; process
series the registered processes' ids (rows vanish a day after a process stops). No path
or snapshot name is ever a label. The values are read fresh from the database on each
scrape in a fixed number of queries (tests pin it).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import datetime

from django.db.models import Count, F, Min
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder

from pobsync_models.models import (
    BackupJob,
    BackupRun,
    Delivery,
    GlobalConfig,
    Host,
    SnapshotRecord,
    WorkerProcess,
)
from pobsync_models.run_status import FINISHED_OUTCOMES
from pobsync_models.storages import storage_summaries
from pobsync_web.access import api_auth_error, api_require_safe
from pobsync_web.overview import all_host_rows, count_by


def _gauge(name: str, doc: str, labels: list[str] | None = None) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=labels)


def _seconds(value: datetime) -> float:
    return value.timestamp()


class PobsyncCollector:
    """Everything /metrics shows, collected at scrape time."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def collect(self) -> Iterator[Metric]:
        yield from self._hosts()
        yield from self._queue()
        yield from self._processes()
        yield from self._backup_root()
        yield from self._storages()

    def _hosts(self) -> Iterator[Metric]:
        rows = all_host_rows(self.now)
        runs = {
            row["host_id"]: row
            for row in BackupRun.objects.filter(
                started_at=F("host__last_run_at"), outcome__in=FINISHED_OUTCOMES
            )
            .order_by("id")
            .values(
                "host_id",
                "outcome",
                "started_at",
                "finished_at",
                "bytes_transferred",
                "files_transferred",
            )
        }
        snapshots = dict(
            SnapshotRecord.objects.filter(state=SnapshotRecord.State.COMPLETE)
            .order_by()
            .values_list("host_id")
            .annotate(n=Count("pk"))
        )
        success = _gauge(
            "pobsync_host_last_success_timestamp_seconds",
            "When the host's newest successful (success or warning) run finished.",
            ["host"],
        )
        outcome = _gauge(
            "pobsync_host_last_run_outcome",
            "1 for the outcome of the host's newest finished run.",
            ["host", "outcome"],
        )
        duration = _gauge(
            "pobsync_host_last_run_duration_seconds",
            "Duration of the newest finished run.",
            ["host"],
        )
        moved = _gauge(
            "pobsync_host_last_run_transferred_bytes",
            "Bytes rsync transferred in the newest finished run.",
            ["host"],
        )
        files = _gauge(
            "pobsync_host_last_run_transferred_files",
            "Files rsync transferred in the newest finished run.",
            ["host"],
        )
        count = _gauge("pobsync_host_snapshots", "Complete snapshots of the host.", ["host"])
        overdue = _gauge(
            "pobsync_host_overdue", "1 when the host has no success within its target.", ["host"]
        )
        failing = _gauge("pobsync_host_failing", "1 when the newest run failed.", ["host"])
        used = dict(
            Host.objects.filter(disk_used_bytes__isnull=False).values_list("pk", "disk_used_bytes")
        )
        disk = _gauge(
            "pobsync_host_disk_used_bytes",
            "Real disk use of the host's snapshots, each inode once (last space scan).",
            ["host"],
        )
        for row in rows:
            host = row.host
            name = [host.name]
            if host.last_success_at is not None:
                success.add_metric(name, _seconds(host.last_success_at))
            run = runs.get(host.pk)
            if run is not None:
                outcome.add_metric([host.name, run["outcome"]], 1)
                if run["finished_at"] is not None:
                    duration.add_metric(
                        name, (run["finished_at"] - run["started_at"]).total_seconds()
                    )
                if run["bytes_transferred"] is not None:
                    moved.add_metric(name, run["bytes_transferred"])
                if run["files_transferred"] is not None:
                    files.add_metric(name, run["files_transferred"])
            count.add_metric(name, snapshots.get(host.pk, 0))
            overdue.add_metric(name, int(row.health.overdue))
            failing.add_metric(name, int(row.health.failing))
            if host.pk in used:
                disk.add_metric(name, used[host.pk])
        yield from (success, outcome, duration, moved, files, count, overdue, failing, disk)

    def _queue(self) -> Iterator[Metric]:
        states = count_by(BackupJob.objects.all(), "state", BackupJob.State)
        jobs = _gauge("pobsync_queue_jobs", "Jobs in the queue table by state.", ["state"])
        for state, n in states.items():
            jobs.add_metric([state], n)
        yield jobs
        running = _gauge("pobsync_running_jobs", "Jobs running now.")
        running.add_metric([], states[BackupJob.State.RUNNING])
        yield running
        oldest = BackupJob.objects.filter(state=BackupJob.State.QUEUED).aggregate(
            first=Min("created_at")
        )["first"]
        age = _gauge(
            "pobsync_queue_oldest_queued_age_seconds", "Age of the oldest queued job (0: none)."
        )
        age.add_metric([], max(0.0, (self.now - oldest).total_seconds()) if oldest else 0.0)
        yield age
        deliveries = _gauge(
            "pobsync_deliveries", "Notification deliveries (outbox rows) by state.", ["state"]
        )
        for state, n in count_by(Delivery.objects.all(), "state", Delivery.State).items():
            deliveries.add_metric([state], n)
        yield deliveries

    def _processes(self) -> Iterator[Metric]:
        seen = _gauge(
            "pobsync_process_heartbeat_age_seconds",
            "Seconds since each registered scheduler or runner was last seen.",
            ["kind", "worker"],
        )
        newest: dict[str, float] = {}
        for worker_id, kind, last in WorkerProcess.objects.values_list(
            "worker_id", "kind", "last_seen_at"
        ):
            age = max(0.0, (self.now - last).total_seconds())
            seen.add_metric([kind, worker_id], age)
            newest[kind] = min(age, newest.get(kind, age))
        yield seen
        for kind in WorkerProcess.Kind.values:
            gauge = _gauge(
                f"pobsync_{kind}_heartbeat_age_seconds",
                f"Seconds since any {kind} was last seen (absent: none registered).",
            )
            if kind in newest:
                gauge.add_metric([], newest[kind])
            yield gauge

    def _backup_root(self) -> Iterator[Metric]:
        config = GlobalConfig.load()
        free = _gauge("pobsync_backup_root_free_bytes", "Bytes available in the backup root.")
        inodes = _gauge("pobsync_backup_root_free_inodes", "Inodes available in the backup root.")
        if config is not None:
            try:
                stat = os.statvfs(config.backup_root)
            except OSError:
                stat = None
            if stat is not None:
                free.add_metric([], stat.f_bavail * stat.f_frsize)
                inodes.add_metric([], stat.f_favail)
        yield free
        yield inodes

    def _storages(self) -> Iterator[Metric]:
        """Per storage (operator-named, few): the figures the runners last measured
        (statvfs) and the growth the daily samples give."""
        gauges = {
            "free_bytes": _gauge("pobsync_storage_free_bytes", "Free bytes.", ["storage"]),
            "used_bytes": _gauge("pobsync_storage_used_bytes", "Used bytes.", ["storage"]),
            "free_inodes": _gauge("pobsync_storage_free_inodes", "Free inodes.", ["storage"]),
            "used_inodes": _gauge("pobsync_storage_used_inodes", "Used inodes.", ["storage"]),
        }
        growth = _gauge(
            "pobsync_storage_growth_bytes_per_day",
            "Growth of used bytes per day over the last 30 days.",
            ["storage"],
        )
        full = _gauge(
            "pobsync_storage_days_until_full",
            "Days until the storage is full at that growth (absent: not growing).",
            ["storage"],
        )
        for storage, usage in storage_summaries(self.now.date()):
            for field, gauge in gauges.items():
                value = getattr(storage, field)
                if value is not None:
                    gauge.add_metric([storage.name], value)
            if usage.growth_per_day is not None:
                growth.add_metric([storage.name], usage.growth_per_day)
            if usage.days_until_full is not None:
                full.add_metric([storage.name], usage.days_until_full)
        yield from (*gauges.values(), growth, full)


@api_require_safe
def metrics(request: HttpRequest) -> HttpResponse:
    """Staff session or API token, like /api/; anonymous is a JSON 401."""
    denied = api_auth_error(request)
    if denied is not None:
        return denied
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PobsyncCollector(timezone.now()))
    # The text format a scraper asks for in Accept (OpenMetrics or 0.0.4 text).
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    return HttpResponse(encoder(registry), content_type=content_type)
