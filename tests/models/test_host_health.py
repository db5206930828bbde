"""The host health rule (pobsync_models.status): pure, so `now` is passed in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pobsync_models.status import (
    OVERDUE_WITHOUT_SCHEDULE,
    Health,
    HostFacts,
    host_health,
    overdue_threshold,
    schedule_interval,
)

NOW = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)  # a Wednesday
CREATED = NOW - timedelta(days=100)
DAILY = (("15 2 * * *", "UTC"),)


def facts(**kw) -> HostFacts:
    kw.setdefault("enabled", True)
    kw.setdefault("created_at", CREATED)
    kw.setdefault("last_outcome", "success")
    kw.setdefault("last_success_at", NOW - timedelta(hours=10))
    kw.setdefault("schedules", DAILY)
    return HostFacts(**kw)


@pytest.mark.parametrize(
    ("cron", "interval"),
    [
        ("15 2 * * *", timedelta(days=1)),
        ("0 */6 * * *", timedelta(hours=6)),
        ("0 2 * * 1-5", timedelta(days=3)),  # Friday to Monday
        ("0 3 * * 0", timedelta(days=7)),
        ("0 2 1 * *", timedelta(days=31)),
    ],
)
def test_it_takes_the_longest_gap_between_runs_as_the_interval(cron, interval):
    assert schedule_interval(cron, "Europe/Amsterdam") == interval


def test_it_allows_twice_the_most_frequent_schedule_or_36_hours_without_one():
    assert overdue_threshold(DAILY) == timedelta(days=2)
    assert overdue_threshold((("15 2 * * *", "UTC"), ("0 */6 * * *", "UTC"))) == timedelta(hours=12)
    assert overdue_threshold(()) == OVERDUE_WITHOUT_SCHEDULE == timedelta(hours=36)


def test_it_is_ok_within_twice_the_interval_and_overdue_after():
    assert host_health(facts(last_success_at=NOW - timedelta(hours=47)), NOW).health == Health.OK
    late = host_health(facts(last_success_at=NOW - timedelta(hours=49)), NOW)
    assert late.health == Health.OVERDUE and late.overdue and not late.failing


def test_it_does_not_call_a_weekday_schedule_overdue_on_monday_morning():
    monday = datetime(2026, 3, 9, 1, 0, tzinfo=UTC)
    friday_run = datetime(2026, 3, 6, 2, 10, tzinfo=UTC)
    weekdays = (("0 2 * * 1-5", "UTC"),)
    result = host_health(facts(last_success_at=friday_run, schedules=weekdays), monday)
    assert result.health == Health.OK


def test_it_uses_36_hours_without_a_schedule():
    assert (
        host_health(facts(schedules=(), last_success_at=NOW - timedelta(hours=35)), NOW).health
        == Health.OK
    )
    assert host_health(facts(schedules=(), last_success_at=NOW - timedelta(hours=37)), NOW).overdue


def test_it_counts_a_never_backed_up_host_from_its_creation():
    fresh = facts(last_outcome=None, last_success_at=None, created_at=NOW - timedelta(hours=1))
    assert host_health(fresh, NOW).health == Health.NEW
    forgotten = facts(last_outcome=None, last_success_at=None, created_at=NOW - timedelta(days=3))
    assert host_health(forgotten, NOW).health == Health.OVERDUE


def test_failing_wins_over_overdue_and_both_are_reported():
    both = host_health(facts(last_outcome="failed", last_success_at=NOW - timedelta(days=9)), NOW)
    assert both.health == Health.FAILING and both.failing and both.overdue


def test_a_warning_is_not_failing_and_counts_as_a_success():
    result = host_health(facts(last_outcome="warning"), NOW)
    assert result.health == Health.WARNING and not result.failing and not result.overdue


def test_a_disabled_host_is_neither_failing_nor_overdue():
    result = host_health(facts(enabled=False, last_outcome="failed", last_success_at=None), NOW)
    assert result.health == Health.DISABLED and not result.failing and not result.overdue


def test_the_ranking_puts_problems_first():
    assert [h.rank for h in (Health.FAILING, Health.OVERDUE, Health.WARNING)] == [0, 1, 2]
    assert Health.DISABLED.rank == max(h.rank for h in Health)
