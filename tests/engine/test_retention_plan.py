"""The retention planner against hand-computed plans (docs/retention.md's example too)."""

from __future__ import annotations

import random
from datetime import UTC, datetime

from pobsync_models.retention import Snapshot, plan_retention
from pobsync_models.specs import RetentionPolicy, SnapshotName

NOW = datetime(2027, 1, 1, tzinfo=UTC)


def snap(stamp: str, state: str = "complete") -> Snapshot:
    when = datetime.fromisoformat(stamp).replace(tzinfo=UTC)
    return Snapshot(str(SnapshotName.for_time(when)), state)


def plan(snaps, now=NOW, **policy):
    return plan_retention(snaps, RetentionPolicy(**policy), now)


def by_day(decisions) -> dict[str, tuple[str, str]]:
    """name prefix (YYYY-MM-DDTHHMM) -> (action, reason)"""
    return {d.name[:15]: (d.action, d.reason) for d in decisions}


def test_it_reproduces_the_worked_example_of_the_docs():
    snaps = [
        snap("2026-12-02T14:00", "partial"),  # P: an interrupted run after A
        snap("2026-12-02T02:00"),  # A
        snap("2026-12-01T14:00"),  # B
        snap("2026-12-01T02:00"),  # C
        snap("2026-11-30T02:00"),  # D
        snap("2026-11-29T14:00", "partial"),  # Q
        snap("2026-11-29T02:00"),  # E
        snap("2026-11-22T02:00"),  # F
        snap("2026-11-15T02:00"),  # G
        snap("2026-10-31T02:00"),  # H
        snap("2026-10-15T02:00"),  # I
    ]
    random.Random(1).shuffle(snaps)  # input order does not matter
    decisions = plan(snaps, keep_last=2, keep_daily=3, keep_weekly=2, keep_monthly=2)
    names = [d.name for d in decisions]
    assert names == sorted(names, reverse=True)
    seed = "partial newer than the newest complete snapshot (seeds the next run)"
    assert by_day(decisions) == {
        "2026-12-02T1400": ("keep", seed),
        "2026-12-02T0200": (
            "keep",
            "last #1; daily 2026-12-02; weekly 2026-W49; monthly 2026-12",
        ),
        "2026-12-01T1400": ("keep", "last #2; daily 2026-12-01"),
        "2026-12-01T0200": ("prune", "no rule keeps it"),
        "2026-11-30T0200": ("keep", "daily 2026-11-30; monthly 2026-11"),
        "2026-11-29T1400": ("prune", "partial older than the newest complete snapshot"),
        "2026-11-29T0200": ("keep", "weekly 2026-W48"),
        "2026-11-22T0200": ("prune", "no rule keeps it"),
        "2026-11-15T0200": ("prune", "no rule keeps it"),
        "2026-10-31T0200": ("prune", "no rule keeps it"),
        "2026-10-15T0200": ("prune", "no rule keeps it"),
    }


def test_it_uses_iso_weeks_across_the_2020_2021_year_boundary():
    # 2020-12-28 (Mon), 2021-01-01 (Fri) and 2021-01-03 (Sun) are all ISO week 2020-W53;
    # 2021-01-04 (Mon) starts 2021-W01. Calendar years split differently.
    snaps = [snap("2021-01-04T00:00"), snap("2021-01-03T00:00"), snap("2021-01-01T00:00")]
    snaps.append(snap("2020-12-28T00:00"))
    assert by_day(plan(snaps, keep_weekly=2, keep_yearly=2)) == {
        "2021-01-04T0000": ("keep", "weekly 2021-W01; yearly 2021"),
        "2021-01-03T0000": ("keep", "weekly 2020-W53"),
        "2021-01-01T0000": ("prune", "no rule keeps it"),
        "2020-12-28T0000": ("keep", "yearly 2020"),
    }


def test_it_puts_2018_12_31_in_iso_week_2019_w01():
    snaps = [snap("2019-01-06T12:00"), snap("2018-12-31T12:00"), snap("2018-12-30T12:00")]
    assert by_day(plan(snaps, keep_weekly=3)) == {
        "2019-01-06T1200": ("keep", "weekly 2019-W01"),
        "2018-12-31T1200": ("prune", "no rule keeps it"),
        "2018-12-30T1200": ("keep", "weekly 2018-W52"),
    }


def test_it_keeps_the_newest_of_each_hour_and_skips_empty_periods():
    snaps = [snap("2026-05-01T10:45"), snap("2026-05-01T10:15"), snap("2026-05-01T08:30")]
    snaps.append(snap("2026-05-01T07:59"))
    assert by_day(plan(snaps, keep_hourly=2)) == {
        "2026-05-01T1045": ("keep", "hourly 2026-05-01T10"),
        "2026-05-01T1015": ("prune", "no rule keeps it"),
        "2026-05-01T0830": ("keep", "hourly 2026-05-01T08"),
        "2026-05-01T0759": ("prune", "no rule keeps it"),
    }


def test_it_keeps_everything_with_an_empty_policy():
    snaps = [snap("2026-05-01T10:45"), snap("2026-04-01T10:15", "partial")]
    decisions = plan(snaps)
    assert [d.action for d in decisions] == ["keep", "keep"]
    assert decisions[0].reason == "empty policy keeps everything"


def test_it_never_counts_a_partial_toward_a_rule():
    snaps = [snap("2026-05-03T00:00", "partial"), snap("2026-05-02T00:00")]
    snaps.append(snap("2026-05-01T00:00"))
    got = by_day(plan(snaps, keep_last=1))
    assert got["2026-05-03T0000"][0] == "keep"
    assert got["2026-05-02T0000"] == ("keep", "last #1")
    assert got["2026-05-01T0000"] == ("prune", "no rule keeps it")


def test_it_keeps_partials_when_there_is_no_complete_snapshot():
    snaps = [snap("2026-05-03T00:00", "partial"), snap("2026-05-01T00:00", "partial")]
    assert [d.action for d in plan(snaps, keep_last=1)] == ["keep", "keep"]


def test_it_never_prunes_a_protected_base_of_a_running_backup():
    snaps = [snap("2026-05-03T00:00"), snap("2026-05-01T00:00")]
    protected = frozenset({snaps[1].name})
    decisions = plan_retention(snaps, RetentionPolicy(keep_last=1), NOW, protected_names=protected)
    assert decisions[1].keep and decisions[1].reason == "base of a running backup"


def test_it_keeps_snapshots_dated_after_now():
    snaps = [snap("2026-05-03T00:00"), snap("2026-05-02T00:00")]
    now = datetime(2026, 5, 1, tzinfo=UTC)
    decisions = plan(snaps, now=now, keep_last=1)
    assert decisions[1].keep and "future" in decisions[1].reason


def test_it_ignores_pruned_and_missing_records():
    snaps = [snap("2026-05-03T00:00"), snap("2026-05-02T00:00", "pruned")]
    snaps.append(snap("2026-05-01T00:00", "missing"))
    assert [d.name[:10] for d in plan(snaps, keep_last=5)] == ["2026-05-03"]


def test_it_orders_same_second_names_by_their_sequence_number():
    when = datetime(2026, 5, 1, tzinfo=UTC)
    names = [str(SnapshotName.for_time(when, seq)) for seq in (0, 2, 10)]
    decisions = plan([Snapshot(n) for n in names], keep_last=1)
    assert [d.name for d in decisions] == [names[2], names[1], names[0]]
    assert decisions[0].reason == "last #1"


def test_it_never_prunes_the_newest_complete_snapshot_whatever_the_policy():
    rng = random.Random(42)
    for _ in range(200):
        snaps = [
            Snapshot(
                str(
                    SnapshotName.for_time(
                        datetime(2020, 1, 1, tzinfo=UTC).fromtimestamp(
                            1577836800 + rng.randrange(0, 3 * 365 * 86400), UTC
                        )
                    )
                ),
                rng.choice(["complete", "complete", "partial"]),
            )
            for _ in range(rng.randrange(1, 40))
        ]
        snaps = list({s.name: s for s in snaps}.values())
        policy = {
            f: rng.choice([0, 0, 1, 2, 5])
            for f in ("keep_last", "keep_hourly", "keep_daily", "keep_weekly", "keep_monthly")
        }
        decisions = plan(snaps, **policy)
        complete = [d for d in decisions if d.state == "complete"]
        if complete:
            assert complete[0].keep, (policy, complete[0])
        assert len(decisions) == len(snaps)
