"""The read queries behind the dashboard and the API: hosts with their health, and the
summaries of schedules, snapshots, runs, the queue and the worker processes.

Invariant: every function here issues a fixed number of queries, whatever the number of
hosts, runs, snapshots or jobs (tests/web pin the counts), and none of them writes.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from django.db.models import Count, F, Max, Min, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce

from pobsync_models.models import (
    BackupJob,
    BackupRun,
    Delivery,
    Host,
    Schedule,
    SnapshotRecord,
    WorkerProcess,
)
from pobsync_models.run_status import FINISHED_OUTCOMES
from pobsync_models.status import HostFacts, HostHealth, host_health, overdue_after

# Beyond this many ids an IN list is larger than loading every enabled schedule.
_IN_LIST_LIMIT = 500
WORKER_STALE_AFTER = timedelta(seconds=180)  # the same default as `pobsync health`
_STATES = tuple(SnapshotRecord.State.values)
# The run status the health rule reads, denormalised on Host (pobsync_models.run_status).
HEALTH_FIELDS = ("last_run_outcome", "last_run_at", "last_success_at")
# The Host columns a row of the overview shows; the JSON config columns stay unread.
SUMMARY_FIELDS = (
    "id",
    "name",
    "address",
    "enabled",
    "created_at",
    "running_job_id",
    "overdue_after_hours",
    "disk_used_bytes",
    "disk_used_inodes",
    *HEALTH_FIELDS,
)


def annotate_hosts(hosts: QuerySet) -> QuerySet:
    """Hosts with what a host's row shows besides the Host columns (the run status is
    on the row itself: pobsync_models.run_status): the newest finished run's message,
    next scheduled run, newest complete snapshot (index probes per host)."""
    # The run recorded as the host's last one: an equality probe of (host, started_at).
    last = BackupRun.objects.filter(
        host=OuterRef("pk"), started_at=OuterRef("last_run_at"), outcome__in=FINISHED_OUTCOMES
    )
    # MIN() rather than ORDER BY next_run_at LIMIT 1: with the ORDER BY, MariaDB walked
    # schedule_due_idx across every host's schedules for each host (70 ms per page).
    next_run = (
        Schedule.objects.filter(host=OuterRef("pk"), enabled=True)
        .order_by()
        .values("host")
        .annotate(first=Min("next_run_at"))
    )
    newest = SnapshotRecord.objects.filter(
        host=OuterRef("pk"), state=SnapshotRecord.State.COMPLETE
    ).order_by("-name")
    return hosts.annotate(
        last_message=Subquery(last.values("message")[:1]),
        next_run_at=Subquery(next_run.values("first")[:1]),
        newest_snapshot=Subquery(newest.values("name")[:1]),
    )


@dataclass(frozen=True)
class HostRow:
    host: Host | HostBrief  # a Host annotated by annotate_hosts() when `full`
    health: HostHealth
    schedules: tuple[tuple[str, str], ...]
    snapshots: dict[str, int] | None = None  # state -> count when `full`

    @property
    def full(self) -> bool:
        return self.snapshots is not None

    @property
    def snapshot_count(self) -> int:
        """Complete snapshots: the ones a restore can use."""
        return (self.snapshots or {}).get(SnapshotRecord.State.COMPLETE, 0)

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


def snapshot_counts_by_host(host_ids: list[int]) -> dict[int, dict[str, int]]:
    """host id -> {state: count} with every state present, in one query (for a page of
    hosts: the IN list keeps it to those hosts' index ranges)."""
    counts = {pk: dict.fromkeys(_STATES, 0) for pk in host_ids}
    query = SnapshotRecord.objects.order_by().filter(host_id__in=host_ids)
    for host_id, state, n in query.values_list("host_id", "state").annotate(n=Count("pk")):
        counts[host_id][state] = n
    return counts


def _judge(hosts: list[Host] | list[HostBrief], now: datetime) -> list[HostRow]:
    schedules = enabled_schedules([h.pk for h in hosts])
    rows = []
    for host in hosts:
        own = tuple(schedules.get(host.pk, ()))
        facts = HostFacts(
            enabled=host.enabled,
            created_at=host.created_at,
            last_outcome=host.last_run_outcome or None,
            last_success_at=host.last_success_at,
            schedules=own,
            overdue_after=overdue_after(host.overdue_after_hours),
        )
        rows.append(HostRow(host=host, health=host_health(facts, now), schedules=own))
    return rows


def host_rows(hosts: QuerySet, now: datetime) -> list[HostRow]:
    """Full rows for a page of hosts (at most a few hundred): 3 queries."""
    hosts = list(annotate_hosts(hosts))
    counts = snapshot_counts_by_host([h.pk for h in hosts])
    return [replace(row, snapshots=counts[row.host.pk]) for row in _judge(hosts, now)]


@dataclass(frozen=True, slots=True)
class HostBrief:
    """The columns the health rule and the sort need, read without building models
    (measured: a third of the time of Host instances at 1,000 hosts)."""

    pk: int
    name: str
    enabled: bool
    created_at: datetime
    running_job_id: int | None
    last_run_outcome: str  # blank: no finished run yet
    last_success_at: datetime | None
    overdue_after_hours: int | None

    @property
    def last_outcome(self) -> str | None:
        return self.last_run_outcome or None


def all_host_rows(now: datetime) -> list[HostRow]:
    """Every host judged, most urgent first (failing, overdue, warning, new, ok,
    disabled); 2 queries, the first a plain scan of Host. Rows carry a HostBrief: pass a
    page of them to fill_rows()."""
    hosts = [
        HostBrief(*values)
        for values in Host.objects.order_by().values_list(
            "pk",
            "name",
            "enabled",
            "created_at",
            "running_job_id",
            "last_run_outcome",
            "last_success_at",
            "overdue_after_hours",
        )
    ]
    rows = _judge(hosts, now)
    rows.sort(key=lambda row: row.sort_key)
    return rows


def fill_rows(rows: list[HostRow]) -> list[HostRow]:
    """The same rows, in the same order, `full`: 2 queries for the page."""
    ids = [row.host.pk for row in rows]
    full = {h.pk: h for h in annotate_hosts(Host.objects.only(*SUMMARY_FIELDS).filter(pk__in=ids))}
    counts = snapshot_counts_by_host(ids)
    return [replace(row, host=full[row.host.pk], snapshots=counts[row.host.pk]) for row in rows]


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


def snapshot_totals() -> dict[str, int]:
    """{state: count} over all snapshot records, plus "corrupt": complete snapshots that
    verification found damaged (the attention bar). One GROUP BY over snapshot_state_idx
    (13 ms on SQLite, 26 ms on MariaDB at 100,000 records)."""
    counts = {str(value): 0 for value in SnapshotRecord.State.values}
    counts["corrupt"] = 0
    corrupt = Q(integrity=SnapshotRecord.Integrity.CORRUPT)
    rows = (
        SnapshotRecord.objects.order_by()
        .values_list("state")
        .annotate(n=Count("pk"), bad=Count("pk", filter=corrupt))
    )
    for state, n, bad in rows:
        counts[state] = n
        if state == SnapshotRecord.State.COMPLETE:
            counts["corrupt"] = bad
    return counts


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
    # Newest by id, not started_at: a job has a handful of runs, and ordering by
    # started_at would let the planner walk the global started_at index instead of
    # the job's own rows (measured: 800 ms at 100,000 runs on SQLite).
    run = BackupRun.objects.filter(job=OuterRef("pk")).order_by("-id")

    def progress(field: str):
        # A restore job has no BackupRun: its progress is on its RestoreRequest.
        return Coalesce(Subquery(run.values(field)[:1]), F(f"restore__{field}"))

    return jobs.select_related("host").annotate(
        run_id=Subquery(run.values("id")[:1]),
        run_started_at=Subquery(run.values("started_at")[:1]),
        progress_percent=progress("progress_percent"),
        progress_bytes=progress("progress_bytes"),
        progress_files=progress("progress_files"),
        progress_updated_at=progress("progress_updated_at"),
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


def delivery_counts() -> dict[str, int]:
    """Notification outbox rows by state (pending, delivered, gave_up): one query."""
    return count_by(Delivery.objects.all(), "state", Delivery.State)
