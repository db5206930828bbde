"""Host health rules: when a host is failing, overdue, fine or new.

Pure functions of their inputs and `now`; the web views and the API load the facts
(last runs, schedules) and ask these functions, so the rule lives in one place and is
tested without a database. The rule is documented in docs/dashboard.md.

Overdue: an enabled host is overdue when it has had no successful backup (outcome
success or warning: both commit a snapshot) within twice its schedule's interval, or
within 36 hours when it has no enabled schedule. A host that never succeeded counts
from when it was created, so a host added a minute ago is "new", not overdue.

A host's own "overdue after" (Host.overdue_after_hours) replaces that threshold.

A schedule's interval is the longest gap between two consecutive run times of its cron
expression over a reference week (at least two run times), so a weekdays-only schedule
is not overdue on a Monday morning and a monthly one allows two months.
With several enabled schedules the most frequent one counts.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from croniter import croniter

OVERDUE_WITHOUT_SCHEDULE = timedelta(hours=36)
OVERDUE_FACTOR = 2
# Outcomes that committed a snapshot; "last success" means the newest of these.
SUCCESS_OUTCOMES = ("success", "warning")

_REFERENCE_START = datetime(2001, 1, 1)  # a Monday, far from any DST edge in January
_REFERENCE_SPAN = timedelta(days=8)
_MAX_FIRES = 512


class Health(enum.StrEnum):
    """A host's state at a glance, most urgent first (the dashboard sorts by rank)."""

    FAILING = "failing"
    OVERDUE = "overdue"
    WARNING = "warning"
    NEW = "new"
    OK = "ok"
    DISABLED = "disabled"

    @property
    def rank(self) -> int:
        return _RANK[self]

    @property
    def is_problem(self) -> bool:
        return self in (Health.FAILING, Health.OVERDUE)


_RANK = {health: rank for rank, health in enumerate(Health)}


@lru_cache(maxsize=4096)
def schedule_interval(cron: str, timezone: str = "UTC") -> timedelta:
    """The longest gap between consecutive run times of `cron` in `timezone`.

    Measured from a fixed reference date over at least eight days and two run times (so
    the value depends only on the expression and is cached per process).
    """
    start = _REFERENCE_START.replace(tzinfo=ZoneInfo(timezone))
    fires = croniter(" ".join(cron.split()), start)
    previous = fires.get_next(datetime)
    first = previous
    longest = timedelta(0)
    for _ in range(_MAX_FIRES):
        current = fires.get_next(datetime)
        longest = max(longest, current.astimezone(UTC) - previous.astimezone(UTC))
        previous = current
        if current - first >= _REFERENCE_SPAN:
            break
    return longest


@lru_cache(maxsize=4096)
def overdue_threshold(schedules: tuple[tuple[str, str], ...]) -> timedelta:
    """How long an enabled host may go without a success: twice the interval of its most
    frequent enabled schedule ((cron, timezone) pairs), or 36 h without one."""
    intervals = [schedule_interval(cron, tz) for cron, tz in schedules]
    if not intervals:
        return OVERDUE_WITHOUT_SCHEDULE
    return OVERDUE_FACTOR * min(intervals)


def is_overdue(
    *,
    last_success_at: datetime | None,
    created_at: datetime,
    threshold: timedelta,
    now: datetime,
) -> bool:
    """True when neither a success nor (without one) the host's creation is within
    `threshold` of `now`."""
    since = last_success_at or created_at
    return now - since > threshold


@dataclass(frozen=True)
class HostFacts:
    """What the health rule needs to know about one host."""

    enabled: bool
    created_at: datetime
    last_outcome: str | None  # the newest finished run's outcome; None if none finished
    last_success_at: datetime | None
    schedules: tuple[tuple[str, str], ...] = ()  # enabled (cron, timezone) pairs
    overdue_after: timedelta | None = None  # the host's own freshness target, if set


@dataclass(frozen=True)
class HostHealth:
    health: Health
    failing: bool
    overdue: bool
    threshold: timedelta


def host_health(facts: HostFacts, now: datetime) -> HostHealth:
    """Failing (newest finished run failed) wins over overdue, which wins over a warning.
    Disabled hosts are neither failing nor overdue: nobody expects them to run."""
    threshold = facts.overdue_after or overdue_threshold(facts.schedules)
    if not facts.enabled:
        return HostHealth(Health.DISABLED, False, False, threshold)
    failing = facts.last_outcome == "failed"
    overdue = is_overdue(
        last_success_at=facts.last_success_at,
        created_at=facts.created_at,
        threshold=threshold,
        now=now,
    )
    if failing:
        health = Health.FAILING
    elif overdue:
        health = Health.OVERDUE
    elif facts.last_outcome == "warning":
        health = Health.WARNING
    elif facts.last_success_at is None:
        health = Health.NEW
    else:
        health = Health.OK
    return HostHealth(health, failing, overdue, threshold)


def overdue_after(hours: int | None) -> timedelta | None:
    """Host.overdue_after_hours as the threshold host_health() takes."""
    return timedelta(hours=hours) if hours else None
