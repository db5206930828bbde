"""One scheduler tick: turn due schedule slots into queued jobs, exactly once each.

Invariants:
- A slot becomes at most one job: UNIQUE(schedule, scheduled_for) is the guarantee. The
  jobs of a chunk are inserted together inside atomic(); an IntegrityError there means
  another scheduler inserted one of them since this one looked, and the chunk falls
  back to one atomic() insert per job, where an IntegrityError means "already
  enqueued" (never INSERT IGNORE or ignore_conflicts, which would also swallow real
  errors). Advancing next_run_at is a conditional UPDATE on the value this scheduler
  read, in the same transaction, so two schedulers that read the same rows do not both
  act on them; the unique key is the backstop when they overlap partly.
- A schedule whose slots passed while no scheduler ran gets one job for the latest
  passed slot (catch-up), not one per missed slot.
- A host that already has a queued job of the same kind gets no second one: the slot
  is coalesced into the waiting job (next_run_at still advances).
- Disabled schedules are not read; a due schedule of a disabled host advances without a
  job, so enabling the host later does not fire a catch-up.
- next_run_at NULL (new, edited, imported from YAML) is computed here from `now`.
- A cron that never fires (31 February; the model validator refuses it, but a row can
  predate that or bypass it) is reported once in TickResult.broken and parked with
  next_run_at NULL; the caller passes what it was told back as `known_broken`, and
  such a schedule is skipped silently until its cron or time zone is edited.

Speed (bench/queue.py: 10,000 schedules all due at once): due times are computed once
per distinct (cron, timezone[, next_run_at]) in a tick; schedules are read as plain
tuples and handled CHUNK per transaction, each chunk in a fixed number of statements
(the grouped conditional UPDATEs, one read of existing slots, one of hosts with a
queued job, one multi-row INSERT).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from pobsync_models.models import BackupJob, Schedule
from pobsync_models.queue import PRIORITY_SCHEDULE, retrying
from pobsync_models.schedules import NeverFiresError, SchedulePlan, next_after, plan
from pobsync_models.storages import job_storage_id

log = logging.getLogger("pobsync.scheduler")

CHUNK = 1000  # schedules handled per transaction
OUTCOMES = ("raced", "host_disabled", "coalesced", "already_enqueued", "enqueued")


@dataclass
class TickResult:
    initialised: int = 0
    enqueued: int = 0
    already_enqueued: int = 0  # another scheduler inserted the slot first
    coalesced: int = 0  # the host already had a queued job
    host_disabled: int = 0
    raced: int = 0  # another scheduler advanced the schedule first
    # schedules found this tick whose cron never fires: pk -> (cron, timezone)
    broken: dict[int, tuple[str, str]] = field(default_factory=dict)
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


class Due(NamedTuple):
    """The columns of a due schedule the tick needs (no model instances: 10,000 of
    them cost more than the rest of the tick)."""

    pk: int
    host_id: int
    host_enabled: bool
    cron: str
    timezone: str
    next_run_at: datetime
    prune: bool
    kind: str
    storage_id: int | None  # the host's (NULL: the default storage)


DUE_FIELDS = (
    "pk",
    "host_id",
    "host__enabled",
    "cron",
    "timezone",
    "next_run_at",
    "prune",
    "kind",
    "host__storage_id",
)


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

    def plan(self, cron: str, tz: str, next_run_at: datetime) -> SchedulePlan | None:
        key = ("plan", cron, tz, next_run_at)
        if key not in self.cache:
            try:
                self.cache[key] = plan(cron, tz, next_run_at, self.now)
            except NeverFiresError:
                self.cache[key] = None
        return self.cache[key]  # type: ignore[return-value]


def _initialise(
    plans: _Plans, result: TickResult, limit: int, known_broken: Mapping[int, tuple[str, str]]
) -> None:
    rows = list(
        Schedule.objects.filter(enabled=True, next_run_at__isnull=True).values_list(
            "pk", "cron", "timezone"
        )[:limit]
    )
    for start in range(0, len(rows), CHUNK):
        groups: dict[datetime, list[int]] = {}
        for pk, cron, tz in rows[start : start + CHUNK]:
            if known_broken.get(pk) == (cron, tz):
                continue  # reported before and not edited since
            when = plans.next_after(cron, tz)
            if when is None:
                result.broken[pk] = (cron, tz)
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


class JobRows:
    """The INSERT of scheduled jobs, prepared once per tick.

    Django's bulk_create prepares all 19 columns of every row in Python (about 150 us a
    row: 1.5 s of a 10,000-job tick); here the columns that are the same for every
    scheduled job are prepared once, each by its field's own get_db_prep_save (model
    defaults, trigger "schedule", the schedule priority), and the rest per distinct
    value. It is a plain INSERT (executemany, which mysqlclient sends as one multi-row
    statement): a duplicate slot raises IntegrityError like any insert, never ignored.
    """

    VARYING = ("host", "schedule", "scheduled_for", "run_after", "prune", "kind", "storage")

    def __init__(self) -> None:
        fields = [f for f in BackupJob._meta.concrete_fields if not f.primary_key]
        constants = {
            "trigger": BackupJob.Trigger.SCHEDULE,
            "priority": PRIORITY_SCHEDULE,
            "created_at": timezone.now(),
        }
        self.template = [
            None
            if f.name in self.VARYING
            else f.get_db_prep_save(constants.get(f.name, f.get_default()), connection)
            for f in fields
        ]
        self.index = {f.name: i for i, f in enumerate(fields)}
        self.cache: dict[tuple[str, object], object] = {}
        quote = connection.ops.quote_name
        # Identifiers come from the model and are quoted; every value is a parameter.
        self.sql = "INSERT INTO {} ({}) VALUES ({})".format(  # noqa: S608
            quote(BackupJob._meta.db_table),
            ", ".join(quote(f.column) for f in fields),
            ", ".join(["%s"] * len(fields)),
        )

    def _prepared(self, name: str, value: object) -> object:
        key = (name, value)
        if key not in self.cache:
            if name == "storage" and value is None:  # a host without one: the default's
                value = job_storage_id(None)
            field = BackupJob._meta.get_field(name)
            self.cache[key] = field.get_db_prep_save(value, connection)
        return self.cache[key]

    def row(self, schedule: Due, slot: datetime) -> tuple:
        values = list(self.template)
        values[self.index["host"]] = schedule.host_id
        values[self.index["schedule"]] = schedule.pk
        values[self.index["scheduled_for"]] = self._prepared("scheduled_for", slot)
        values[self.index["run_after"]] = self._prepared("run_after", slot)
        values[self.index["prune"]] = self._prepared("prune", schedule.prune)
        values[self.index["kind"]] = self._prepared("kind", schedule.kind)
        values[self.index["storage"]] = self._prepared("storage", schedule.storage_id)
        return tuple(values)

    def insert(self, rows: list[tuple]) -> None:
        with connection.cursor() as cursor:
            cursor.executemany(self.sql, rows)


def _advance(chunk: list[tuple[Due, SchedulePlan]], outcomes: dict[str, list]) -> list:
    """Move next_run_at on, conditional on the value read; return the (schedule, slot)
    pairs this scheduler advanced. Schedules with the same (old, new, slot) advance in
    one UPDATE. Zero rows: another scheduler advanced them all, skip. Some rows: another
    scheduler advanced some of them; go on with all and let UNIQUE(schedule,
    scheduled_for) decide, slot by slot."""
    groups: dict[tuple, list[Due]] = {}
    for schedule, decided in chunk:
        key = (schedule.next_run_at, decided.next_run_at, decided.slot)
        groups.setdefault(key, []).append(schedule)
    advanced = []
    for (old, new, slot), members in groups.items():
        moved = Schedule.objects.filter(
            pk__in=[s.pk for s in members], enabled=True, next_run_at=old
        ).update(next_run_at=new, last_scheduled_for=slot)
        if not moved:
            outcomes["raced"] += members
        else:
            advanced += [(s, slot) for s in members]
    return advanced


def existing_slots(pairs: Iterable[tuple[int, datetime]]) -> set[tuple[int, datetime]]:
    """Which (schedule id, scheduled_for) pairs already have a job: one query."""
    pairs = list(pairs)
    if not pairs:
        return set()
    return set(
        BackupJob.objects.filter(
            schedule_id__in={pk for pk, _ in pairs},
            scheduled_for__in={slot for _, slot in pairs},
        ).values_list("schedule_id", "scheduled_for")
    )


def _hosts_with_queued_job(host_ids: set[int]) -> set[tuple[int, str]]:
    """(host id, kind) pairs with a queued job: a queued backup does not swallow a
    verification slot, nor the other way round."""
    if not host_ids:
        return set()
    return set(
        BackupJob.objects.filter(state=BackupJob.State.QUEUED, host_id__in=host_ids)
        .order_by()
        .values_list("host_id", "kind")
        .distinct()
    )


def _insert(jobs: JobRows, pending: list[tuple[Due, datetime]], outcomes: dict) -> None:
    """All jobs in one INSERT; if another scheduler inserted one of them since
    existing_slots() looked, one atomic() insert per job instead."""
    rows = [jobs.row(schedule, slot) for schedule, slot in pending]
    try:
        with transaction.atomic():
            jobs.insert(rows)
        outcomes["enqueued"] += [schedule for schedule, _ in pending]
        return
    except IntegrityError:
        log.info("another scheduler enqueued some of %d slots meanwhile", len(rows))
    for (schedule, slot), row in zip(pending, rows, strict=True):
        try:
            with transaction.atomic():
                jobs.insert([row])
            outcomes["enqueued"].append(schedule)
        except IntegrityError:
            # Only the slot's unique key means "already enqueued"; anything else (a NOT
            # NULL column, a vanished host) is a real error. A locking read sees the
            # other scheduler's committed row whatever the isolation level.
            taken = BackupJob.objects.select_for_update().filter(
                schedule_id=schedule.pk, scheduled_for=slot
            )
            if not taken.exists():
                raise
            outcomes["already_enqueued"].append(schedule)


def _enqueue_chunk(jobs: JobRows, chunk: list[tuple[Due, SchedulePlan]]) -> dict[str, list]:
    """One transaction for a chunk: advance each schedule, then insert the jobs of the
    due slots this scheduler advanced, minus slots already enqueued and hosts that
    already have a queued job of that kind (later slots coalesce into it)."""
    outcomes: dict[str, list] = {name: [] for name in OUTCOMES}
    with transaction.atomic():
        advanced = _advance(chunk, outcomes)
        wanted = []
        for schedule, slot in advanced:
            if schedule.host_enabled:
                wanted.append((schedule, slot))
            else:
                outcomes["host_disabled"].append(schedule)
        if not wanted:
            return outcomes
        existing = existing_slots((s.pk, slot) for s, slot in wanted)
        busy = _hosts_with_queued_job({s.host_id for s, _ in wanted})
        pending = []
        for schedule, slot in wanted:
            if (schedule.pk, slot) in existing:
                outcomes["already_enqueued"].append(schedule)
            elif (schedule.host_id, schedule.kind) in busy:
                outcomes["coalesced"].append(schedule)
            else:
                busy.add((schedule.host_id, schedule.kind))
                pending.append((schedule, slot))
        if pending:
            _insert(jobs, pending, outcomes)
    return outcomes


def _park(broken: list[Due]) -> None:
    """next_run_at NULL for due schedules whose cron never fires, so that they leave the
    due query (which they would otherwise head on every tick); conditional on the value
    read, like every advance."""
    with transaction.atomic():
        for schedule in broken:
            Schedule.objects.filter(pk=schedule.pk, next_run_at=schedule.next_run_at).update(
                next_run_at=None
            )


def tick(
    now: datetime,
    *,
    limit: int = 20000,
    known_broken: Mapping[int, tuple[str, str]] | None = None,
) -> TickResult:
    """Initialise NULL next_run_at values, then enqueue every due slot (up to limit).

    known_broken: never-firing schedules already reported (a previous TickResult.broken),
    skipped without being reported again while their (cron, timezone) is unchanged.
    """
    result = TickResult()
    plans = _Plans(now)
    known_broken = known_broken or {}
    _initialise(plans, result, limit, known_broken)
    due = [
        Due(*row)
        for row in Schedule.objects.filter(enabled=True, next_run_at__lte=now)
        .order_by("next_run_at", "pk")
        .values_list(*DUE_FIELDS)[:limit]
    ]
    if len(due) == limit:
        result.more = True
    decided, broken = [], []
    for schedule in due:
        answer = plans.plan(schedule.cron, schedule.timezone, schedule.next_run_at)
        if answer is not None:
            decided.append((schedule, answer))
            continue
        broken.append(schedule)
        if known_broken.get(schedule.pk) != (schedule.cron, schedule.timezone):
            result.broken[schedule.pk] = (schedule.cron, schedule.timezone)
    if broken:
        retrying(lambda: _park(broken))
    if not decided:
        return result
    jobs = JobRows()
    for start in range(0, len(decided), CHUNK):
        chunk = decided[start : start + CHUNK]
        outcomes = retrying(lambda chunk=chunk: _enqueue_chunk(jobs, chunk))
        for name, items in outcomes.items():
            setattr(result, name, getattr(result, name) + len(items))
    return result
