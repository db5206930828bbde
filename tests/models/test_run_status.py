"""record_finished_run / settle_dead_runs / backfill_run_status: the denormalised run
status on Host (pobsync_models.run_status)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pobsync_models.models import BackupRun, Host
from pobsync_models.run_status import (
    backfill_run_status,
    record_finished_run,
    settle_dead_runs,
)
from tests.support.factories import make_host, make_snapshot

T0 = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)
pytestmark = pytest.mark.django_db


def run(host: Host, outcome: str, hours: float, *, minutes: float = 10) -> BackupRun:
    """A run started `hours` after T0 that took `minutes`, recorded like the engine."""
    started = T0 + timedelta(hours=hours)
    finished = None if outcome == "running" else started + timedelta(minutes=minutes)
    made = BackupRun.objects.create(
        host=host, outcome=outcome, started_at=started, finished_at=finished
    )
    record_finished_run(made)
    return made


def status(host: Host) -> tuple:
    return Host.objects.values_list("last_run_outcome", "last_run_at", "last_success_at").get(
        pk=host.pk
    )


def test_it_starts_blank():
    assert status(make_host()) == ("", None, None)


def test_it_records_a_success_as_last_run_and_last_success():
    host = make_host()
    run(host, "success", 1)
    assert status(host) == ("success", T0 + timedelta(hours=1), T0 + timedelta(hours=1, minutes=10))


def test_it_counts_a_warning_as_a_success():
    host = make_host()
    run(host, "warning", 1)
    assert status(host) == ("warning", T0 + timedelta(hours=1), T0 + timedelta(hours=1, minutes=10))


@pytest.mark.parametrize("outcome", ["failed", "cancelled"])
def test_it_keeps_the_last_success_after_a_failed_or_cancelled_run(outcome):
    host = make_host()
    run(host, "success", 1)
    run(host, outcome, 2)
    assert status(host) == (outcome, T0 + timedelta(hours=2), T0 + timedelta(hours=1, minutes=10))


def test_it_lets_the_newer_run_win_and_ignores_an_older_one_recorded_later():
    host = make_host()
    run(host, "failed", 5)
    run(host, "success", 3)  # older: recorded late (e.g. a slow writer)
    assert status(host) == ("failed", T0 + timedelta(hours=5), T0 + timedelta(hours=3, minutes=10))
    run(host, "warning", 6)
    assert status(host) == ("warning", T0 + timedelta(hours=6), T0 + timedelta(hours=6, minutes=10))


def test_it_moves_the_last_success_only_forward():
    host = make_host()
    run(host, "success", 4)
    run(host, "success", 1)
    assert status(host)[2] == T0 + timedelta(hours=4, minutes=10)


def test_it_uses_the_start_when_a_success_has_no_finish_time():
    host = make_host()
    made = BackupRun(host=host, outcome="success", started_at=T0, finished_at=None)
    made.save()
    record_finished_run(made)
    assert status(host) == ("success", T0, T0)


def test_it_ignores_a_running_run():
    host = make_host()
    run(host, "success", 1)
    run(host, "running", 2)
    assert status(host)[0:2] == ("success", T0 + timedelta(hours=1))


def test_it_recording_the_same_run_again_changes_nothing():
    host = make_host()
    made = run(host, "failed", 1)
    before = status(host)
    record_finished_run(made)
    assert status(host) == before


def test_it_writes_only_its_own_columns():
    """Host rows carry the queue's mutex: a stale Host instance must not clobber it."""
    host = make_host()
    Host.objects.filter(pk=host.pk).update(lease_token="runner-token", enabled=False)
    run(host, "success", 1)
    assert Host.objects.values_list("lease_token", "enabled").get(pk=host.pk) == (
        "runner-token",
        False,
    )


def test_it_fails_only_running_runs_and_records_them():
    host, other = make_host(), make_host()
    run(host, "success", 1)
    dead = run(host, "running", 2)
    alive = run(other, "running", 2)
    failed = settle_dead_runs(BackupRun.objects.filter(host=host), "runner lost")
    assert failed == 1
    dead.refresh_from_db()
    assert (dead.outcome, dead.message) == ("failed", "runner lost")
    assert dead.finished_at is not None
    assert status(host) == ("failed", T0 + timedelta(hours=2), T0 + timedelta(hours=1, minutes=10))
    alive.refresh_from_db()
    assert alive.outcome == "running" and status(other) == ("", None, None)
    assert settle_dead_runs(BackupRun.objects.filter(host=host), "again") == 0


@pytest.mark.parametrize(("code", "outcome"), [(0, "success"), (24, "warning")])
def test_it_gives_a_dead_run_with_a_committed_snapshot_the_snapshots_outcome(code, outcome):
    """Killed after the commit point: the backup is done, so it is not "failed"."""
    host = make_host()
    snapshot = make_snapshot(host, T0, rsync_exit_code=code, files_total=7)
    dead = run(host, "running", 0)
    BackupRun.objects.filter(pk=dead.pk).update(snapshot=snapshot)
    partial = make_snapshot(host, T0 + timedelta(hours=1), state="partial")
    other = run(host, "running", 1)
    BackupRun.objects.filter(pk=other.pk).update(snapshot=partial)
    assert settle_dead_runs(BackupRun.objects.filter(host=host), "runner lost") == 2
    dead.refresh_from_db()
    other.refresh_from_db()
    assert dead.outcome == outcome and f"snapshot {snapshot.name} was committed" in dead.message
    assert (dead.finished_at, dead.rsync_exit_code, dead.files_total) == (
        snapshot.finished_at,
        code,
        7,
    )
    assert (other.outcome, other.message) == ("failed", "runner lost")
    assert status(host) == ("failed", T0 + timedelta(hours=1), snapshot.finished_at)


def test_it_backfills_from_the_run_history_as_the_old_subqueries_did():
    hosts = [make_host() for _ in range(4)]
    rows = [
        # newest success then a failure; an older failure; a running run on top
        (hosts[0], "success", 1, None),
        (hosts[0], "failed", 3, None),
        (hosts[0], "success", 0, None),
        (hosts[0], "running", 4, None),
        # warning newest, no finish time: counts from its start
        (hosts[1], "success", 1, None),
        (hosts[1], "warning", 2, "no finish"),
        # only cancelled
        (hosts[2], "cancelled", 1, None),
        # hosts[3]: no runs at all
    ]
    for host, outcome, hours, note in rows:
        started = T0 + timedelta(hours=hours)
        finished = None if outcome == "running" or note else started + timedelta(minutes=10)
        BackupRun.objects.create(
            host=host, outcome=outcome, started_at=started, finished_at=finished
        )  # no record_finished_run: as rows written before migration 0003
    assert backfill_run_status() == 3
    assert status(hosts[0]) == (
        "failed",
        T0 + timedelta(hours=3),
        T0 + timedelta(hours=1, minutes=10),
    )
    assert status(hosts[1]) == ("warning", T0 + timedelta(hours=2), T0 + timedelta(hours=2))
    assert status(hosts[2]) == ("cancelled", T0 + timedelta(hours=1), None)
    assert status(hosts[3]) == ("", None, None)


def test_the_host_admin_saves_only_the_edited_fields():
    from types import SimpleNamespace

    from django.contrib import admin

    from pobsync_models.admin import HostAdmin

    host = make_host(address="127.0.0.1")
    stale = Host.objects.get(pk=host.pk)  # the admin form loaded it before the run ended
    run(host, "success", 1)
    Host.objects.filter(pk=host.pk).update(lease_token="runner-token")
    stale.address = "127.0.0.2"
    HostAdmin(Host, admin.site).save_model(
        None, stale, SimpleNamespace(changed_data=["address"]), change=True
    )
    assert Host.objects.values_list("address", "lease_token").get(pk=host.pk) == (
        "127.0.0.2",
        "runner-token",
    )
    assert status(host)[0] == "success"
