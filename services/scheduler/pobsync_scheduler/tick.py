"""One scheduler tick: turn due schedule slots into queued jobs, exactly once each.

Invariants:
- A slot becomes at most one job: the job insert runs inside atomic() and an
  IntegrityError on UNIQUE(schedule, scheduled_for) means "already enqueued" (never
  INSERT IGNORE, which would also swallow real errors). Advancing next_run_at is a
  conditional UPDATE on the value this scheduler read, in the same transaction, so two
  schedulers that read the same row cannot both act on it; the unique key is the backstop.
- A schedule whose slots passed while no scheduler ran gets one job for the latest
  passed slot (catch-up), not one per missed slot.
- A host that already has a queued job gets no second one: the slot is coalesced into
  the waiting job (next_run_at still advances).
- Disabled schedules are not read; a due schedule of a disabled host advances without a
  job, so enabling the host later does not fire a catch-up.
- next_run_at NULL (new, edited, imported from YAML) is computed here from `now`.
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

CHUNK = 500  # schedules initialised per transaction


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


def _initialise(now: datetime, result: TickResult, limit: int) -> None:
    rows = list(
        Schedule.objects.filter(enabled=True, next_run_at__isnull=True).values_list(
            "pk", "cron", "timezone"
        )[:limit]
    )
    for start in range(0, len(rows), CHUNK):
        chunk = []
        for pk, cron, tz in rows[start : start + CHUNK]:
            try:
                chunk.append((pk, next_after(cron, tz, now)))
            except NeverFiresError:
                result.broken.append(pk)

        def write(chunk=chunk) -> int:
            with transaction.atomic():
                return sum(
                    Schedule.objects.filter(pk=pk, next_run_at__isnull=True).update(
                        next_run_at=when
                    )
                    for pk, when in chunk
                )

        result.initialised += retrying(write)
    if len(rows) == limit:
        result.more = True


def _enqueue_due(schedule: Schedule, now: datetime, queued_hosts: set[int], result: TickResult):
    try:
        decided = plan(schedule.cron, schedule.timezone, schedule.next_run_at, now)
    except NeverFiresError:
        result.broken.append(schedule.pk)
        return
    slot = decided.slot

    def write() -> str:
        with transaction.atomic():
            moved = Schedule.objects.filter(
                pk=schedule.pk, enabled=True, next_run_at=schedule.next_run_at
            ).update(next_run_at=decided.next_run_at, last_scheduled_for=slot)
            if not moved:
                return "raced"
            if not schedule.host.enabled:
                return "host_disabled"
            if schedule.host_id in queued_hosts:
                return "coalesced"
            try:
                with transaction.atomic():
                    BackupJob.objects.create(
                        host_id=schedule.host_id,
                        schedule_id=schedule.pk,
                        scheduled_for=slot,
                        trigger=BackupJob.Trigger.SCHEDULE,
                        prune=schedule.prune,
                        priority=PRIORITY_SCHEDULE,
                        run_after=slot,
                    )
            except IntegrityError:
                return "already_enqueued"
            return "enqueued"

    outcome = retrying(write)
    if outcome == "enqueued":
        queued_hosts.add(schedule.host_id)
        log.info("enqueued %s slot %s", schedule.host.name, slot.isoformat())
    setattr(result, outcome, getattr(result, outcome) + 1)


def tick(now: datetime, *, limit: int = 5000) -> TickResult:
    """Initialise NULL next_run_at values, then enqueue every due slot (up to limit)."""
    result = TickResult()
    _initialise(now, result, limit)
    due = list(
        Schedule.objects.filter(enabled=True, next_run_at__lte=now)
        .select_related("host")
        .order_by("next_run_at", "pk")[:limit]
    )
    if len(due) == limit:
        result.more = True
    if due:
        queued_hosts = set(
            BackupJob.objects.filter(state=BackupJob.State.QUEUED).values_list("host_id", flat=True)
        )
        for schedule in due:
            _enqueue_due(schedule, now, queued_hosts, result)
    return result
