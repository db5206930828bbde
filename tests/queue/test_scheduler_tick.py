from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pobsync_models.models import BackupJob, Schedule
from pobsync_models.queue import PRIORITY_SCHEDULE
from pobsync_scheduler import tick as tick_module
from pobsync_scheduler.tick import tick
from tests.support.factories import make_host, make_job, make_schedule

pytestmark = pytest.mark.django_db
NOW = datetime(2025, 7, 3, 2, 15, 30, tzinfo=UTC)
SLOT = datetime(2025, 7, 3, 2, 15, tzinfo=UTC)


def test_it_computes_a_missing_next_run_without_enqueueing():
    schedule = make_schedule(make_host(), "15 2 * * *")  # as the YAML import leaves it
    result = tick(NOW)
    schedule.refresh_from_db()
    assert result.initialised == 1 and result.enqueued == 0
    assert schedule.next_run_at == SLOT + timedelta(days=1)


def test_it_enqueues_a_due_slot_once_and_advances_the_schedule():
    host = make_host()
    schedule = make_schedule(host, "15 2 * * *", next_run_at=SLOT, prune=True)
    assert tick(NOW).enqueued == 1
    assert tick(NOW).enqueued == 0
    job = BackupJob.objects.get()
    assert (job.host, job.schedule, job.scheduled_for) == (host, schedule, SLOT)
    assert job.trigger == BackupJob.Trigger.SCHEDULE and job.prune and job.run_after == SLOT
    schedule.refresh_from_db()
    assert schedule.next_run_at == SLOT + timedelta(days=1)
    assert schedule.last_scheduled_for == SLOT


def test_it_treats_an_existing_slot_as_already_enqueued():
    host = make_host()
    schedule = make_schedule(host, "15 2 * * *", next_run_at=SLOT)
    make_job(host, schedule=schedule, scheduled_for=SLOT, state=BackupJob.State.SUCCEEDED)
    result = tick(NOW)
    assert result.already_enqueued == 1 and result.enqueued == 0
    assert BackupJob.objects.count() == 1


def test_it_enqueues_one_catch_up_job_after_an_outage():
    make_schedule(make_host(), "*/5 * * * *", next_run_at=SLOT - timedelta(days=3))
    assert tick(NOW).enqueued == 1
    assert BackupJob.objects.get().scheduled_for == SLOT


def test_it_coalesces_into_a_job_already_queued_for_the_host():
    host = make_host()
    make_job(host)
    schedule = make_schedule(host, "15 2 * * *", next_run_at=SLOT)
    assert tick(NOW).coalesced == 1
    assert BackupJob.objects.count() == 1
    schedule.refresh_from_db()
    assert schedule.next_run_at > NOW


def test_a_queued_backup_does_not_swallow_a_verify_slot_nor_the_other_way_round():
    host = make_host()
    make_job(host)  # a queued backup
    make_schedule(host, "15 2 * * *", next_run_at=SLOT, kind="verify")
    assert tick(NOW).enqueued == 1
    verify = BackupJob.objects.get(kind=BackupJob.Kind.VERIFY)
    assert verify.schedule.kind == "verify" and verify.scheduled_for == SLOT
    make_schedule(host, "15 2 * * *", next_run_at=SLOT, kind="verify")
    result = tick(NOW)  # a second verify slot coalesces into the queued verify job
    assert result.coalesced == 1 and result.enqueued == 0


def test_it_skips_disabled_schedules_and_disabled_hosts():
    make_schedule(make_host(), next_run_at=SLOT, enabled=False)
    off = make_schedule(make_host(enabled=False), "15 2 * * *", next_run_at=SLOT)
    result = tick(NOW)
    assert result.enqueued == 0 and result.host_disabled == 1
    assert not BackupJob.objects.exists()
    off.refresh_from_db()
    assert off.next_run_at > NOW  # no catch-up burst when the host is enabled again


def test_it_ticks_in_a_bounded_number_of_queries_when_nothing_is_due(
    django_assert_max_num_queries,
):
    for _ in range(50):
        make_schedule(make_host(), next_run_at=NOW + timedelta(hours=1))
    with django_assert_max_num_queries(3):
        tick(NOW)
    assert Schedule.objects.filter(next_run_at__lte=NOW).count() == 0


def test_it_gives_a_host_with_two_due_schedules_one_job():
    host = make_host()
    make_schedule(host, "15 2 * * *", next_run_at=SLOT)
    make_schedule(host, "15 2 * * 4", next_run_at=SLOT)
    result = tick(NOW)
    assert (result.enqueued, result.coalesced) == (1, 1)
    assert BackupJob.objects.count() == 1


def test_it_fills_the_columns_it_does_not_set_with_the_model_defaults():
    make_schedule(make_host(), "15 2 * * *", next_run_at=SLOT)
    tick(NOW)
    job, default = BackupJob.objects.get(), BackupJob()
    for name in ("state", "attempts", "max_attempts", "worker_id", "lease_token", "error"):
        assert getattr(job, name) == getattr(default, name), name
    assert job.priority == PRIORITY_SCHEDULE and not job.cancel_requested
    assert job.lease_expires_at is job.started_at is job.finished_at is None
    assert job.created_at is not None


def test_it_enqueues_many_due_schedules_in_a_bounded_number_of_queries(
    django_assert_max_num_queries,
):
    for i in range(120):
        make_schedule(make_host(), f"15 2 * * {i % 3}", next_run_at=SLOT)
    with django_assert_max_num_queries(13):  # 12, and the default storage's id once
        assert tick(NOW).enqueued == 120


def test_it_falls_back_to_one_insert_per_slot_when_another_scheduler_wins_a_race(
    monkeypatch,
):
    hosts = [make_host() for _ in range(3)]
    schedules = [make_schedule(h, "15 2 * * *", next_run_at=SLOT) for h in hosts]
    looked = tick_module.existing_slots

    def another_scheduler_inserts_after_we_looked(pairs):
        seen = looked(pairs)
        make_job(hosts[1], schedule=schedules[1], scheduled_for=SLOT, state="succeeded")
        return seen

    monkeypatch.setattr(tick_module, "existing_slots", another_scheduler_inserts_after_we_looked)
    result = tick(NOW)
    assert (result.enqueued, result.already_enqueued) == (2, 1)
    for schedule in schedules:
        assert BackupJob.objects.filter(schedule=schedule, scheduled_for=SLOT).count() == 1
