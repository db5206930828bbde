from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from pobsync_models.schedules import NeverFiresError, latest_at_or_before, next_after, plan

AMS = "Europe/Amsterdam"


def runs_between(cron: str, tz: str, start: datetime, end: datetime) -> list[datetime]:
    slots, t = [], start
    while (t := next_after(cron, tz, t)) < end:
        slots.append(t)
    return slots


def local_day(day: str, tz: str = AMS) -> tuple[datetime, datetime]:
    start = datetime.fromisoformat(day).replace(tzinfo=ZoneInfo(tz))
    return start.astimezone(UTC), (start + timedelta(days=1)).astimezone(UTC)


def test_it_runs_a_0230_schedule_once_on_the_spring_forward_day():
    start, end = local_day("2025-03-30")  # 02:00 -> 03:00 in Amsterdam
    slots = runs_between("30 2 * * *", AMS, start, end)
    assert slots == [datetime(2025, 3, 30, 1, 30, tzinfo=UTC)]  # 03:30 CEST, shifted by the gap


def test_it_runs_a_0230_schedule_once_on_the_fall_back_day():
    start, end = local_day("2025-10-26")  # 03:00 -> 02:00, 02:30 happens twice
    slots = runs_between("30 2 * * *", AMS, start, end)
    assert slots == [datetime(2025, 10, 26, 0, 30, tzinfo=UTC)]  # the first 02:30 (CEST)


def test_it_runs_daily_exactly_once_per_local_day_across_a_year():
    start, end = local_day("2025-01-01")[0], local_day("2026-01-01")[0]
    slots = runs_between("30 2 * * *", AMS, start, end)
    assert len(slots) == 365
    assert len({s.astimezone(ZoneInfo(AMS)).date() for s in slots}) == 365


def test_it_keeps_wall_clock_time_in_the_schedule_zone():
    after = datetime(2025, 7, 1, tzinfo=UTC)
    assert next_after("15 2 * * *", AMS, after) == datetime(2025, 7, 1, 0, 15, tzinfo=UTC)
    assert next_after("15 2 * * *", "UTC", after) == datetime(2025, 7, 1, 2, 15, tzinfo=UTC)


def test_it_finds_the_latest_slot_at_or_before_now():
    now = datetime(2025, 7, 3, 12, 0, tzinfo=UTC)
    assert latest_at_or_before("0 12 * * *", "UTC", now) == now
    assert latest_at_or_before("0 13 * * *", "UTC", now) == now.replace(day=2, hour=13)


def test_it_plans_nothing_for_a_new_schedule_and_computes_its_next_run():
    now = datetime(2025, 7, 3, 12, 0, tzinfo=UTC)
    decided = plan("15 2 * * *", "UTC", None, now)
    assert decided.slot is None
    assert decided.next_run_at == datetime(2025, 7, 4, 2, 15, tzinfo=UTC)


def test_it_plans_one_catch_up_slot_after_a_long_outage():
    now = datetime(2025, 7, 10, 12, 0, tzinfo=UTC)
    stale = datetime(2025, 7, 1, 2, 15, tzinfo=UTC)  # nine missed nights
    decided = plan("15 2 * * *", "UTC", stale, now)
    assert decided.slot == datetime(2025, 7, 10, 2, 15, tzinfo=UTC)
    assert decided.next_run_at == datetime(2025, 7, 11, 2, 15, tzinfo=UTC)


def test_it_plans_nothing_before_the_next_run():
    now = datetime(2025, 7, 3, 1, 0, tzinfo=UTC)
    nxt = datetime(2025, 7, 3, 2, 15, tzinfo=UTC)
    assert plan("15 2 * * *", "UTC", nxt, now).slot is None


def test_it_says_when_a_cron_never_fires():
    with pytest.raises(NeverFiresError):
        next_after("0 0 31 2 *", "UTC", datetime(2025, 1, 1, tzinfo=UTC))
