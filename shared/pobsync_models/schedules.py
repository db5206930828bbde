"""Due-time computation for cron schedules: pure functions of (cron, timezone, now).

A cron expression is read in the schedule's time zone (wall-clock time, like cron on a
machine set to that zone); every instant returned is an aware UTC datetime, which is
what Schedule.next_run_at and BackupJob.scheduled_for store.

DST rules (docs/queue.md), so that a daily schedule runs exactly once every day:
- a wall time that does not exist (spring forward, 02:30 in Europe/Amsterdam on the last
  Sunday of March) runs shifted forward by the length of the gap (03:30 CEST);
- a wall time that happens twice (fall back, 02:30 on the last Sunday of October) runs
  once, at its first occurrence (02:30 CEST).
Sub-hourly schedules therefore skip the repeated hour on the fall-back day (cron's
own behaviour on a machine in that zone), and never run twice at one instant.

croniter walks naive wall-clock times; this module alone maps them to instants, because
croniter's own handling of aware datetimes across DST changes has varied by version.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from croniter import croniter

# Larger than any UTC-offset change a time zone makes at once (2 h in practice), so a
# window this wide around a pivot contains every wall time that maps near it.
SHIFT_WINDOW = timedelta(hours=3)
MAX_STEPS = 5000  # bound on croniter steps for one answer (a per-minute cron: 3.5 days)


class NeverFiresError(ValueError):
    """The expression names no existing time (e.g. "0 0 31 2 *")."""


@dataclass(frozen=True)
class SchedulePlan:
    """What the scheduler should do with one schedule at `now`.

    slot: the slot to enqueue now (the latest one at or before now), or None;
    next_run_at: the new Schedule.next_run_at (the first slot strictly after now when a
    slot was due, otherwise the value to store, computed or unchanged).
    """

    slot: datetime | None
    next_run_at: datetime


@lru_cache(maxsize=256)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def to_instant(wall: datetime, zone: ZoneInfo) -> datetime:
    """A naive wall-clock time in zone -> aware UTC. fold=0 picks the first occurrence of
    a repeated time and shifts a skipped time forward by the gap (PEP 495)."""
    return wall.replace(tzinfo=zone, fold=0).astimezone(UTC)


def _wall(instant: datetime, zone: ZoneInfo) -> datetime:
    return instant.astimezone(zone).replace(tzinfo=None)


def _steady(zone: ZoneInfo, instant: datetime) -> bool:
    """True when the zone's UTC offset does not change within SHIFT_WINDOW of instant,
    so wall-clock order and instant order agree around it."""
    before = (instant - SHIFT_WINDOW).astimezone(zone).utcoffset()
    return before == (instant + SHIFT_WINDOW).astimezone(zone).utcoffset()


def next_after(cron: str, tz: str, after: datetime) -> datetime:
    """The first slot strictly after `after` (aware), as aware UTC."""
    zone = _zone(tz)
    start = _wall(after, zone)
    it = croniter(cron, start if _steady(zone, after) else start - SHIFT_WINDOW)
    best: datetime | None = None
    best_wall: datetime | None = None
    for _ in range(MAX_STEPS):
        try:
            wall = it.get_next(datetime)
        except Exception as exc:  # croniter raises its own errors for impossible dates
            raise NeverFiresError(f"cron {cron!r} never fires") from exc
        if best_wall is not None and wall > best_wall + 2 * SHIFT_WINDOW:
            return best
        instant = to_instant(wall, zone)
        if instant > after and (best is None or instant < best):
            best, best_wall = instant, wall
            if _steady(zone, best):  # no later wall time can map before it
                return best
    if best is None:
        raise NeverFiresError(f"cron {cron!r} has no slot within {MAX_STEPS} steps")
    return best


def latest_at_or_before(cron: str, tz: str, now: datetime) -> datetime | None:
    """The last slot at or before `now` (aware UTC), None if none within MAX_STEPS."""
    zone = _zone(tz)
    start = _wall(now, zone) + timedelta(minutes=1)
    it = croniter(cron, start if _steady(zone, now) else start + SHIFT_WINDOW)
    best: datetime | None = None
    best_wall: datetime | None = None
    for _ in range(MAX_STEPS):
        try:
            wall = it.get_prev(datetime)
        except Exception:
            return best
        if best_wall is not None and wall < best_wall - 2 * SHIFT_WINDOW:
            return best
        instant = to_instant(wall, zone)
        if instant <= now and (best is None or instant > best):
            best, best_wall = instant, wall
            if _steady(zone, best):  # no earlier wall time can map after it
                return best
    return best


def plan(cron: str, tz: str, next_run_at: datetime | None, now: datetime) -> SchedulePlan:
    """Decide one schedule's tick.

    - next_run_at NULL (new, edited or imported): compute the first slot after now;
      nothing is enqueued (no job for a slot that passed before the schedule existed).
    - next_run_at in the future: nothing to do.
    - next_run_at at or before now: one job for the latest slot at or before now, even
      if several slots passed while the scheduler was down (one catch-up, not a storm),
      and next_run_at moves to the first slot after now.
    """
    if next_run_at is None:
        return SchedulePlan(None, next_after(cron, tz, now))
    if next_run_at > now:
        return SchedulePlan(None, next_run_at)
    slot = latest_at_or_before(cron, tz, now) or next_run_at
    return SchedulePlan(max(slot, next_run_at), next_after(cron, tz, now))
