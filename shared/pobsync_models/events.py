"""record_event: the one way any process reports something an operator must hear about.

Invariant: one row per occurrence key, whichever and however many processes detect it.
The insert runs in its own savepoint, so a duplicate never breaks the caller's
transaction, and callers need no lock: two schedulers racing on the same transition both
call this and exactly one row results (the other gets None).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from pobsync_models.models import Event, Host

Kind = Event.Kind
Severity = Event.Severity

# The severity an event of each kind carries unless the producer says otherwise.
DEFAULT_SEVERITY: dict[str, str] = {
    Kind.HOST_FAILING: Severity.CRITICAL,
    Kind.HOST_OVERDUE: Severity.CRITICAL,
    Kind.HOST_RECOVERED: Severity.INFO,
    Kind.JOB_REAPED: Severity.WARNING,
    Kind.RUNNER_LOST: Severity.WARNING,
    Kind.SCHEDULER_LOST: Severity.CRITICAL,
    Kind.STORAGE_UNMOUNTED: Severity.CRITICAL,
    Kind.STORAGE_FULL: Severity.CRITICAL,
    Kind.SNAPSHOT_CORRUPT: Severity.CRITICAL,
}

KEY_MAX = Event._meta.get_field("key").max_length


def record_event(
    kind: str,
    key: str,
    message: str,
    *,
    subject: str = "",
    host: Host | None = None,
    severity: str | None = None,
    details: Mapping[str, Any] | None = None,
    at: datetime | None = None,
) -> Event | None:
    """Record the occurrence `key` of `kind`; return the new Event, or None when that
    occurrence was already recorded (by this or any other process).

    `subject` defaults to the host's name. Keys longer than the column are refused rather
    than cut, since a cut key could merge two occurrences into one.
    """
    event = _event(kind, key, message, subject, host, severity, details, at)
    try:
        with transaction.atomic():
            event.save(force_insert=True)
    except IntegrityError:
        return None
    return event


def record_events(occurrences: Sequence[Mapping[str, Any]]) -> list[Event] | None:
    """Record many occurrences at once (each a mapping of record_event's arguments) in
    one multi-row INSERT; return the new Events in order, with their ids, or None when
    any key was already recorded, in which case nothing was written. Callers with
    concurrent writers fall back to record_event() one by one."""
    events = [_event(**o) for o in occurrences]
    try:
        with transaction.atomic():
            return Event.objects.bulk_create(events)
    except IntegrityError:
        return None


def _event(
    kind: str,
    key: str,
    message: str,
    subject: str = "",
    host: Host | None = None,
    severity: str | None = None,
    details: Mapping[str, Any] | None = None,
    at: datetime | None = None,
) -> Event:
    if kind not in Kind.values:
        raise ValueError(f"unknown event kind {kind!r}")
    if not key or len(key) > KEY_MAX:
        raise ValueError(f"event key must be 1 to {KEY_MAX} characters: {key!r}")
    return Event(
        kind=kind,
        key=key,
        severity=severity or DEFAULT_SEVERITY[kind],
        host=host,
        subject=subject or (host.name if host is not None else ""),
        message=message,
        details=dict(details or {}),
        created_at=at or timezone.now(),
    )
