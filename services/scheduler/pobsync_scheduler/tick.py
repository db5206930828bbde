"""One scheduler tick: turn due schedule slots into queued jobs, exactly once each.

Invariants:
- A slot becomes at most one job: the job insert runs inside atomic() and an
  IntegrityError on UNIQUE(schedule, scheduled_for) means "already enqueued" (never
  INSERT IGNORE, which would also swallow real errors). Advancing next_run_at is a
  conditional UPDATE on the value this scheduler read, in the same transaction, so two
  schedulers that read the same rows do not both act on them; the unique key is the
  backstop when they overlap partly.
- A schedule whose slots passed while no scheduler ran gets one job for the latest
  passed slot (catch-up), not one per missed slot.
- A host that already has a queued job gets no second one: the slot is coalesced into
  the waiting job (next_run_at still advances).
- Disabled schedules are not read; a due schedule of a disabled host advances without a
  job, so enabling the host later does not fire a catch-up.
- next_run_at NULL (new, edited, imported from YAML) is computed here from `now`.

Speed: due times are computed once per distinct (cron, timezone[, next_run_at]) in a
tick, and schedules are handled CHUNK per transaction (bench/queue.py: 10,000 schedules).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from django.db import IntegrityError, transaction

from pobsync_models.models import BackupJob, Schedule
from pobsync_models.queue import PRIORITY_SCHEDULE, retrying
from pobsync_models.schedules import NeverFiresError, next_after, plan

log = logging.getLogger("pobsync.scheduler")

CHUNK = 500  # schedules handled per transaction


@dataclass
class TickResult:
    initialised: int = 0
    enqueued: int = 0
    already_enqueued: int = 0  # another scheduler inserted the slot first
    coalesced: int = 0  # the host already had a queued job
    host_disabled: int = 0
    raced: int = 0  # another scheduler advanced the schedule first
    broken: list[int] = field(default_factory=list)  # schedules whose cron never fires
    more: bool = False  # more due schedules than one tick's limit

    def summary(self) -> str:
        parts = [
            f"{self.enqueued} enqueued",
            f"{self.initialised} initialised",
            f"{self.coalesced} coalesced",
            f"{self.already_enqueued} already enqueued",
        ]
        if self.host_disabled:
            parts.append(f"{self.host_disabled} host disabled")
        if self.broken:
            parts.append(f"{len(self.broken)} never fire")
        return ", ".join(parts)


class _Plans:
    """Memoised due-time answers for one tick (`now` is fixed, so they cannot change)."""

    def __init__(self, now: datetime) -> None:
        self.now = now
        self.cache: dict[tuple, object] = {}

    def next_after(self, cron: str, tz: str) -> datetime | None:
        key = ("next", cron, tz)
        if key not in self.cache:
            try:
                self.cache[key] = next_after(cron, tz, self.now)
            except NeverFiresError:
                self.cache[key] = None
        return self.cache[key]  # type: ignore[return-value]

    def plan(self, cron: str, tz: str, next_run_at: datetime):
        key = ("plan", cron, tz, next_run_at)
        if key not in self.cache:
            try:
                self.cache[key] = plan(cron, tz, next_run_at, self.now)
            except NeverFiresError:
                self.cache[key] = None
        return self.cache[key]


def _initialise(plans: _Plans, result: TickResult, limit: int) -> None:
    rows = list(
        Schedule.objects.filter(enabled=True, next_run_at__isnull=True).values_list(
            "pk", "cron", "timezone"
        )[:limit]
    )
    for start in range(0, len(rows), CHUNK):
        groups: dict[datetime, list[int]] = {}
        for pk, cron, tz in rows[start : start + CHUNK]:
            when = plans.next_after(cron, tz)
            if when is None:
                result.broken.append(pk)
            else:
                groups.setdefault(when, []).append(pk)

        def write(groups=groups) -> int:
            # Conditional on NULL: a value another scheduler stored meanwhile stays.
            with transaction.atomic():
                return sum(
                    Schedule.objects.filter(pk__in=pks, next_run_at__isnull=True).update(
                        next_run_at=when
                    )
                    for when, pks in groups.items()
                )

        result.initialised += retrying(write)
    if len(rows) == limit:
        result.more = True


def _job(schedule: Schedule, slot: datetime) -> BackupJob:
    return BackupJob(
        host_id=schedule.host_id,
        schedule_id=schedule.pk,
        scheduled_for=slot,
        trigger=BackupJob.Trigger.SCHEDULE,
        prune=schedule.prune,
        priority=PRIORITY_SCHEDULE,
        run_after=slot,
    )


def _enqueue_chunk(chunk: list, queued_hosts: set[int]) -> dict[str, list]:
    """One transaction for a chunk of (schedule, plan): advance each schedule with a
    conditional UPDATE, then insert the jobs of those this scheduler advanced."""
    outcomes: dict[str, list] = {
        k: [] for k in ("raced", "host_disabled", "coalesced", "already_enqueued", "enqueued")
    }
    with transaction.atomic():
        pending: list[BackupJob] = []
        hosts_taken: set[int] = set()
        # Schedules with the same (old next_run_at, new next_run_at, slot) advance in one
        # conditional UPDATE. Zero rows: another scheduler advanced them all, skip. Some
        # rows: another scheduler advanced some of them; insert for all and let
        # UNIQUE(schedule, scheduled_for) decide, slot by slot.
        groups: dict[tuple, list] = {}
        for schedule, decided in chunk:
            key = (schedule.next_run_at, decided.next_run_at, decided.slot)
            groups.setdefault(key, []).append(schedule)
        for (old, new, slot), members in groups.items():
            moved = Schedule.objects.filter(
                pk__in=[s.pk for s in members], enabled=True, next_run_at=old
            ).update(next_run_at=new, last_scheduled_for=slot)
            if not moved:
                outcomes["raced"] += members
                continue
            for schedule in members:
                if not schedule.host.enabled:
                    outcomes["host_disabled"].append(schedule)
                elif schedule.host_id in queued_hosts or schedule.host_id in hosts_taken:
                    outcomes["coalesced"].append(schedule)
                else:
                    hosts_taken.add(schedule.host_id)
                    pending.append(_job(schedule, slot))
        if not pending:
            return outcomes
        existing = set(
            BackupJob.objects.filter(
                schedule_id__in={j.schedule_id for j in pending},
                scheduled_for__in={j.scheduled_for for j in pending},
            ).values_list("schedule_id", "scheduled_for")
        )
        fresh = [j for j in pending if (j.schedule_id, j.scheduled_for) not in existing]
        outcomes["already_enqueued"] += [j for j in pending if j not in fresh]
        try:
            with transaction.atomic():
                BackupJob.objects.bulk_create(fresh)
            outcomes["enqueued"] += fresh
        except IntegrityError:
            # Another scheduler inserted some of these slots since we looked: insert one
            # by one, each IntegrityError meaning "already enqueued" (never INSERT IGNORE).
            for job in fresh:
                job.pk = None
                try:
                    with transaction.atomic():
                        job.save(force_insert=True)
                    outcomes["enqueued"].append(job)
                except IntegrityError:
                    outcomes["already_enqueued"].append(job)
    return outcomes


def tick(now: datetime, *, limit: int = 20000) -> TickResult:
    """Initialise NULL next_run_at values, then enqueue every due slot (up to limit)."""
    result = TickResult()
    plans = _Plans(now)
    _initialise(plans, result, limit)
    due = list(
        Schedule.objects.filter(enabled=True, next_run_at__lte=now)
        .select_related("host")
        .order_by("next_run_at", "pk")[:limit]
    )
    if len(due) == limit:
        result.more = True
    if not due:
        return result
    queued_hosts = set(
        BackupJob.objects.filter(state=BackupJob.State.QUEUED).values_list("host_id", flat=True)
    )
    decided = []
    for schedule in due:
        answer = plans.plan(schedule.cron, schedule.timezone, schedule.next_run_at)
        if answer is None:
            result.broken.append(schedule.pk)
        else:
            decided.append((schedule, answer))
    for start in range(0, len(decided), CHUNK):
        chunk = decided[start : start + CHUNK]
        outcomes = retrying(lambda chunk=chunk: _enqueue_chunk(chunk, queued_hosts))
        for name, items in outcomes.items():
            setattr(result, name, getattr(result, name) + len(items))
        for job in outcomes["enqueued"]:
            queued_hosts.add(job.host_id)
            log.debug("enqueued job for host %s slot %s", job.host_id, job.scheduled_for)
    return result
