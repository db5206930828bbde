"""The scheduler's rules: which hosts changed alert state, which processes went silent.

Invariants:
- One event per transition, never one per pass: a host's last recorded alert state is a
  HostAlertState row, and a transition is a conditional UPDATE on (state, seq) in the same
  savepoint as the event insert, so of two schedulers that see the same change exactly
  one records it (the event key, built from host id and seq, is the backstop).
- Everything is computed from the database and `now`, so a runner killed with -9 or a
  host whose runs simply stop still produces its event.
- A host with no HostAlertState row is "ok"; the row is created on its first transition.
- A disabled host is not judged: disabling a failing host sends no "recovered", and
  enabling it again compares its state with the one recorded before.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from croniter import CroniterError
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import BigIntegerField, Case, F, Value, When

from pobsync_models.events import record_event, record_events
from pobsync_models.models import (
    BackupRun,
    Event,
    Host,
    HostAlertState,
    Schedule,
    WorkerProcess,
)
from pobsync_models.queue import retrying
from pobsync_models.registry import DEFAULT_MAX_AGE
from pobsync_models.run_status import FINISHED_OUTCOMES
from pobsync_models.status import Health, HostFacts, host_health, overdue_after

log = logging.getLogger("pobsync.alerts")
AlertState = HostAlertState.State
CHUNK = 500  # transitions per transaction
LOST_AFTER = timedelta(seconds=DEFAULT_MAX_AGE)  # as `pobsync health` and /api/status/

_KIND = {
    AlertState.FAILING: Event.Kind.HOST_FAILING,
    AlertState.OVERDUE: Event.Kind.HOST_OVERDUE,
    AlertState.OK: Event.Kind.HOST_RECOVERED,
}
_WORD = {AlertState.FAILING: "failing", AlertState.OVERDUE: "overdue", AlertState.OK: "recovered"}
HOST_FIELDS = (
    "pk",
    "name",
    "enabled",
    "created_at",
    "last_run_outcome",
    "last_success_at",
    "overdue_after_hours",
)


def alert_state(health: Health) -> str:
    if health is Health.FAILING:
        return AlertState.FAILING
    if health is Health.OVERDUE:
        return AlertState.OVERDUE
    return AlertState.OK


def host_url(name: str) -> str:
    return f"{settings.POBSYNC_BASE_URL}/dashboard/hosts/{name}/"


@dataclass(frozen=True)
class Change:
    host_id: int
    name: str
    old: str
    seq: int | None  # None: no HostAlertState row yet
    new: str
    last_success_at: datetime | None
    threshold: timedelta


def _schedules() -> dict[int, tuple[tuple[str, str], ...]]:
    by_host: dict[int, list[tuple[str, str]]] = defaultdict(list)
    for host_id, cron, tz in (
        Schedule.objects.filter(enabled=True)
        .order_by("id")
        .values_list("host_id", "cron", "timezone")
    ):
        by_host[host_id].append((cron, tz))
    return {pk: tuple(pairs) for pk, pairs in by_host.items()}


def host_changes(now: datetime) -> list[Change]:
    """Hosts whose alert state differs from the recorded one: 3 queries, any host count."""
    recorded = dict(
        (pk, (state, seq))
        for pk, state, seq in HostAlertState.objects.values_list("host_id", "state", "seq")
    )
    schedules = _schedules()
    changes = []
    for pk, name, enabled, created, outcome, success, hours in (
        Host.objects.order_by().values_list(*HOST_FIELDS).iterator(chunk_size=2000)
    ):
        if not enabled:
            continue  # nobody expects a disabled host to run: keep its recorded state
        facts = HostFacts(
            enabled=enabled,
            created_at=created,
            last_outcome=outcome or None,
            last_success_at=success,
            schedules=schedules.get(pk, ()),
            overdue_after=overdue_after(hours),
        )
        try:
            judged = host_health(facts, now)
        except (CroniterError, ValueError, LookupError):
            # A cron that never fires or an unknown time zone (the tick reports those):
            # judge the host as if it had no schedule rather than stop every alert.
            judged = host_health(replace(facts, schedules=()), now)
        new = alert_state(judged.health)
        old, seq = recorded.get(pk, (AlertState.OK, None))
        if new != old:
            changes.append(Change(pk, name, old, seq, new, success, judged.threshold))
    return changes


def _reasons(host_ids: list[int]) -> dict[int, tuple[int, str, str]]:
    """host id -> (run id, outcome, message) of its newest finished run: one query."""
    rows = (
        BackupRun.objects.filter(
            host_id__in=host_ids, started_at=F("host__last_run_at"), outcome__in=FINISHED_OUTCOMES
        )
        .order_by("host_id", "-id")
        .values_list("host_id", "id", "outcome", "message")
    )
    out: dict[int, tuple[int, str, str]] = {}
    for host_id, run_id, outcome, message in rows:
        out.setdefault(host_id, (run_id, outcome, message))
    return out


def _describe(change: Change, last_run: tuple[int, str, str] | None, now: datetime) -> str:
    hours = round(change.threshold / timedelta(hours=1), 1)
    if change.new == AlertState.FAILING:
        message = last_run[2] if last_run and last_run[2] else "the newest backup run failed"
        return f"newest run failed: {message}".splitlines()[0][:500]
    if change.new == AlertState.OVERDUE:
        if change.last_success_at is None:
            return f"no successful backup since the host was added (overdue after {hours:g} h)"
        return f"no successful backup for more than {hours:g} h"
    if last_run and last_run[1] in ("success", "warning"):
        return f"newest run ended with {last_run[1]}"
    return f"no longer {change.old}"


class _LostRaceError(Exception):
    pass


def _event_args(change: Change, last_run: tuple[int, str, str] | None, now: datetime) -> dict:
    """record_event's arguments for one transition (its key: host id and new seq)."""
    seq = (change.seq or 0) + 1
    return {
        "kind": _KIND[change.new],
        "key": f"host-{_WORD[change.new]}:{change.name}:{change.host_id}.{seq}",
        "message": _describe(change, last_run, now),
        "subject": change.name,
        "host": Host(pk=change.host_id, name=change.name),
        "details": {
            "state": change.new,
            "previous": change.old,
            "last_success_at": (
                change.last_success_at.isoformat() if change.last_success_at else None
            ),
            "overdue_after_seconds": round(change.threshold.total_seconds()),
            "run_id": last_run[0] if last_run else None,
            "url": host_url(change.name),
        },
        "at": now,
    }


def _apply_one(change: Change, last_run: tuple[int, str, str] | None, now: datetime) -> bool:
    seq = (change.seq or 0) + 1
    try:
        with transaction.atomic():
            event = record_event(**_event_args(change, last_run, now))
            if event is None:
                raise _LostRaceError
            bad = event if change.new != AlertState.OK else None
            if change.seq is None:
                HostAlertState.objects.create(
                    host_id=change.host_id, state=change.new, seq=seq, since=now, event=bad
                )
            elif not HostAlertState.objects.filter(
                host_id=change.host_id, state=change.old, seq=change.seq
            ).update(state=change.new, seq=seq, since=now, event=bad):
                raise _LostRaceError
    except (_LostRaceError, IntegrityError):
        return False  # another scheduler recorded this transition
    return True


def _apply_batch(chunk: list[Change], runs: dict, now: datetime) -> int:
    """The whole chunk in a fixed number of statements: grouped conditional UPDATEs of
    the known states, one multi-row INSERT of the events (record_events), one of the
    new states, one UPDATE pointing bad states at their events. Raises _LostRaceError
    or IntegrityError (rolling everything back) when another scheduler moved any of
    these hosts first; the caller then goes host by host."""
    groups: dict[tuple[str, int, str], list[int]] = defaultdict(list)
    for c in chunk:
        if c.seq is not None:
            groups[(c.old, c.seq, c.new)].append(c.host_id)
    with transaction.atomic():
        for (old, seq, new), ids in groups.items():
            moved = HostAlertState.objects.filter(host_id__in=ids, state=old, seq=seq).update(
                state=new, seq=seq + 1, since=now, event=None
            )
            if moved != len(ids):
                raise _LostRaceError
        events = record_events([_event_args(c, runs.get(c.host_id), now) for c in chunk])
        if events is None:
            raise _LostRaceError
        HostAlertState.objects.bulk_create(
            [
                HostAlertState(
                    host_id=c.host_id,
                    state=c.new,
                    seq=1,
                    since=now,
                    event=e if c.new != AlertState.OK else None,
                )
                for c, e in zip(chunk, events, strict=True)
                if c.seq is None
            ]
        )
        bad = {
            c.host_id: e.pk
            for c, e in zip(chunk, events, strict=True)
            if c.seq is not None and c.new != AlertState.OK
        }
        if bad:
            pointers = [When(host_id=h, then=Value(e)) for h, e in bad.items()]
            HostAlertState.objects.filter(host_id__in=list(bad)).update(
                event_id=Case(*pointers, output_field=BigIntegerField())
            )
    return len(chunk)


def can_batch() -> bool:
    """The batch path needs the new events' ids back from one INSERT (SQLite 3.35+,
    MariaDB 10.5+, PostgreSQL)."""
    return connection.features.can_return_rows_from_bulk_insert


def record_host_transitions(now: datetime) -> int:
    """Record one event per host whose alert state changed; return how many."""
    changes = host_changes(now)
    recorded = 0
    for start in range(0, len(changes), CHUNK):
        chunk = changes[start : start + CHUNK]

        def apply(chunk: list[Change] = chunk) -> int:
            runs = _reasons([c.host_id for c in chunk])
            if can_batch():
                try:
                    return _apply_batch(chunk, runs, now)
                except (_LostRaceError, IntegrityError):
                    log.info("another scheduler recorded some of %d transitions", len(chunk))
            with transaction.atomic():
                return sum(_apply_one(c, runs.get(c.host_id), now) for c in chunk)

        recorded += retrying(apply)
    return recorded


def record_lost_processes(now: datetime) -> int:
    """A runner_lost / scheduler_lost event per registered process unseen for LOST_AFTER
    (one per process and last-seen time: a process that comes back and goes silent
    again is a new occurrence). Clean exits delete the row, so they never alert."""
    stale = list(
        WorkerProcess.objects.filter(last_seen_at__lt=now - LOST_AFTER).values_list(
            "worker_id", "kind", "last_seen_at"
        )
    )
    if not stale:
        return 0
    keys = {
        (worker_id, kind): f"{kind}-lost:{worker_id}:{int(seen.timestamp())}"
        for worker_id, kind, seen in stale
    }
    known = set(Event.objects.filter(key__in=keys.values()).values_list("key", flat=True))
    recorded = 0
    for worker_id, kind, seen in stale:
        key = keys[(worker_id, kind)]
        if key in known:
            continue
        event_kind = (
            Event.Kind.SCHEDULER_LOST
            if kind == WorkerProcess.Kind.SCHEDULER
            else Event.Kind.RUNNER_LOST
        )
        event = record_event(
            event_kind,
            key,
            f"{kind} {worker_id} last seen {seen:%Y-%m-%d %H:%M:%S} UTC and not since",
            subject=worker_id[:128],
            details={"worker_id": worker_id, "process": kind, "last_seen_at": seen.isoformat()},
            at=now,
        )
        recorded += event is not None
    return recorded
