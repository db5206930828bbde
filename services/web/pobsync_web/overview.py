"""The read queries behind the dashboard and the API: hosts with their health, and the
summaries of schedules, snapshots, runs, the queue and the worker processes.

Invariant: every function here issues a fixed number of queries, whatever the number of
hosts, runs, snapshots or jobs (tests/web pin the counts), and none of them writes.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count, Max, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce

from pobsync_models.models import (
    BackupJob,
    BackupRun,
    Host,
    Schedule,
    SnapshotRecord,
    WorkerProcess,
)
from pobsync_models.status import SUCCESS_OUTCOMES, HostFacts, HostHealth, host_health

# Beyond this many ids an IN list is larger than loading every enabled schedule.
_IN_LIST_LIMIT = 500
WORKER_STALE_AFTER = timedelta(seconds=180)  # the same default as `pobsync health`


def _newest_run(**filters: object) -> QuerySet:
    return BackupRun.objects.filter(host=OuterRef("pk"), **filters).order_by("-started_at", "-id")


def annotate_hosts(hosts: QuerySet) -> QuerySet:
    """Hosts with last run, last success, next run and snapshot figures as columns.

    Each is a correlated subquery answered from an index on (host, ...), so the cost per
    host is a few index probes, not a scan of its history.
    """
    finished = _newest_run(outcome__in=[o for o in BackupRun.Outcome if o != "running"])
    success = _newest_run(outcome__in=SUCCESS_OUTCOMES)
    complete = SnapshotRecord.objects.filter(
        host=OuterRef("pk"), state=SnapshotRecord.State.COMPLETE
    )
    next_run = Schedule.objects.filter(
        host=OuterRef("pk"), enabled=True, next_run_at__isnull=False
    ).order_by("next_run_at")
    return hosts.annotate(
        last_outcome=Subquery(finished.values("outcome")[:1]),
        last_run_at=Subquery(finished.values("started_at")[:1]),
        last_message=Subquery(finished.values("message")[:1]),
        last_success_at=Subquery(
            success.annotate(at=Coalesce("finished_at", "started_at")).values("at")[:1]
        ),
        next_run_at=Subquery(next_run.values("next_run_at")[:1]),
        snapshot_count=Coalesce(
            Subquery(complete.order_by().values("host").annotate(n=Count("pk")).values("n")[:1]),
            0,
        ),
        newest_snapshot=Subquery(complete.order_by("-name").values("name")[:1]),
    )


@dataclass(frozen=True)
class HostRow:
    host: Host  # annotated by annotate_hosts()
    health: HostHealth
    schedules: tuple[tuple[str, str], ...]

    @property
    def sort_key(self) -> tuple[int, str]:
        return (self.health.health.rank, self.host.name)


def enabled_schedules(host_ids: list[int]) -> dict[int, list[tuple[str, str]]]:
    """host id -> its enabled (cron, timezone) pairs, in one query."""
    query = Schedule.objects.filter(enabled=True).order_by("id")
    if len(host_ids) <= _IN_LIST_LIMIT:
        query = query.filter(host_id__in=host_ids)
    wanted = set(host_ids)
    by_host: dict[int, list[tuple[str, str]]] = defaultdict(list)
    for host_id, cron, tz in query.values_list("host_id", "cron", "timezone"):
        if host_id in wanted:
            by_host[host_id].append((cron, tz))
    return by_host


def host_rows(hosts: QuerySet | list[Host], now: datetime) -> list[HostRow]:
    """Evaluates annotated hosts (2 queries) and judges each with the health rule."""
    hosts = list(hosts)
    schedules = enabled_schedules([h.pk for h in hosts])
    rows = []
    for host in hosts:
        own = tuple(schedules.get(host.pk, ()))
        facts = HostFacts(
            enabled=host.enabled,
            created_at=host.created_at,
            last_outcome=host.last_outcome,
            last_success_at=host.last_success_at,
            schedules=own,
        )
        rows.append(HostRow(host=host, health=host_health(facts, now), schedules=own))
    return rows


def all_host_rows(now: datetime) -> list[HostRow]:
    """Every host, most urgent first: failing, overdue, warning, new, ok, disabled."""
    rows = host_rows(annotate_hosts(Host.objects.all()), now)
    rows.sort(key=lambda row: row.sort_key)
    return rows


@dataclass(frozen=True)
class HostCounts:
    total: int
    enabled: int
    failing: int
    overdue: int
    warning: int
    new: int
    running: int


def host_counts(rows: list[HostRow]) -> HostCounts:
    return HostCounts(
        total=len(rows),
        enabled=sum(r.host.enabled for r in rows),
        failing=sum(r.health.failing for r in rows),
        overdue=sum(r.health.overdue for r in rows),
        warning=sum(r.health.health == "warning" for r in rows),
        new=sum(r.health.health == "new" for r in rows),
        running=sum(r.host.running_job_id is not None for r in rows),
    )


def count_by(query: QuerySet, field: str, choices: type) -> dict[str, int]:
    """{choice: count} with every choice present (zero when absent), in one query."""
    counts = {str(value): 0 for value in choices.values}
    for key, n in query.order_by().values_list(field).annotate(n=Count("pk")):
        counts[key] = n
    return counts


def run_counts_since(since: datetime) -> dict[str, int]:
    return count_by(BackupRun.objects.filter(started_at__gte=since), "outcome", BackupRun.Outcome)


def snapshot_counts() -> dict[str, int]:
    return count_by(SnapshotRecord.objects.all(), "state", SnapshotRecord.State)


@dataclass(frozen=True)
class QueueCounts:
    queued: int
    due: int
    running: int


def queue_counts(now: datetime) -> QueueCounts:
    active = BackupJob.objects.filter(
        state__in=[BackupJob.State.QUEUED, BackupJob.State.RUNNING]
    ).aggregate(
        queued=Count("pk", filter=Q(state=BackupJob.State.QUEUED)),
        due=Count("pk", filter=Q(state=BackupJob.State.QUEUED, run_after__lte=now)),
        running=Count("pk", filter=Q(state=BackupJob.State.RUNNING)),
    )
    return QueueCounts(**active)


def with_progress(jobs: QuerySet) -> QuerySet:
    """Jobs with their newest run's progress as columns (the runner writes it there)."""
    run = BackupRun.objects.filter(job=OuterRef("pk")).order_by("-started_at", "-id")
    return jobs.select_related("host").annotate(
        run_id=Subquery(run.values("id")[:1]),
        run_started_at=Subquery(run.values("started_at")[:1]),
        progress_percent=Subquery(run.values("progress_percent")[:1]),
        progress_bytes=Subquery(run.values("progress_bytes")[:1]),
        progress_files=Subquery(run.values("progress_files")[:1]),
        progress_updated_at=Subquery(run.values("progress_updated_at")[:1]),
    )


def running_jobs() -> QuerySet:
    return with_progress(BackupJob.objects.filter(state=BackupJob.State.RUNNING)).order_by(
        "started_at", "id"
    )


def queued_jobs() -> QuerySet:
    """In claim order: priority, then run_after, then id (the job_claim_idx index)."""
    return (
        BackupJob.objects.filter(state=BackupJob.State.QUEUED)
        .select_related("host")
        .order_by("priority", "run_after", "id")
    )


def upcoming_schedules(limit: int) -> list[Schedule]:
    return list(
        Schedule.objects.filter(enabled=True, next_run_at__isnull=False)
        .select_related("host")
        .order_by("next_run_at", "id")[:limit]
    )


@dataclass(frozen=True)
class WorkerSummary:
    kind: str
    count: int  # processes seen within WORKER_STALE_AFTER
    last_seen_at: datetime | None
    registered: int

    @property
    def alive(self) -> bool:
        return self.count > 0


def worker_summaries(now: datetime) -> dict[str, WorkerSummary]:
    """scheduler/runner -> how many were seen recently and when any was last seen."""
    fresh_since = now - WORKER_STALE_AFTER
    out = {kind: WorkerSummary(kind, 0, None, 0) for kind in WorkerProcess.Kind.values}
    rows = (
        WorkerProcess.objects.order_by()
        .values_list("kind")
        .annotate(
            fresh=Count("pk", filter=Q(last_seen_at__gte=fresh_since)),
            last=Max("last_seen_at"),
            registered=Count("pk"),
        )
    )
    for kind, fresh, last, registered in rows:
        out[kind] = WorkerSummary(kind, fresh, last, registered)
    return out
