from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pobsync_models.models import BackupJob, Schedule
from pobsync_scheduler.daemon import Scheduler, seconds_to_next_pass
from pobsync_scheduler.tick import tick
from tests.support.factories import make_host, make_schedule

pytestmark = pytest.mark.django_db
NOW = datetime(2025, 7, 3, 2, 15, 30, tzinfo=UTC)
SLOT = datetime(2025, 7, 3, 2, 15, tzinfo=UTC)


def test_it_reports_a_due_schedule_that_never_fires_once_and_parks_it():
    # A row from before the validator refused it (the ORM does not run validators).
    broken = make_schedule(make_host(), "0 0 31 2 *", next_run_at=SLOT)
    fine = make_schedule(make_host(), "15 2 * * *", next_run_at=SLOT)
    first = tick(NOW)
    assert first.broken == {broken.pk: ("0 0 31 2 *", "UTC")} and first.enqueued == 1
    broken.refresh_from_db()
    assert broken.next_run_at is None  # out of the due query: it cannot head every tick
    again = tick(NOW + timedelta(minutes=1), known_broken=first.broken)
    assert again.broken == {} and again.initialised == 0
    assert BackupJob.objects.get().schedule_id == fine.pk


def test_it_takes_a_parked_schedule_back_once_its_cron_is_edited():
    broken = make_schedule(make_host(), "0 0 31 2 *")
    known = tick(NOW).broken
    assert list(known) == [broken.pk]
    Schedule.objects.filter(pk=broken.pk).update(cron="15 2 * * *")
    result = tick(NOW, known_broken=known)
    assert result.initialised == 1 and result.broken == {}
    broken.refresh_from_db()
    assert broken.next_run_at == SLOT + timedelta(days=1)


def test_it_logs_a_schedule_that_never_fires_once_not_every_pass():
    make_schedule(make_host(), "0 0 31 2 *", next_run_at=SLOT)
    said: list[str] = []
    scheduler = Scheduler(interval=60, now=NOW, say=said.append)
    for _ in range(3):
        scheduler.process_one()
    warnings = [line for line in said if "never fires" in line]
    assert len(warnings) == 1, said
    assert "'0 0 31 2 *' (UTC) never fires; it is skipped until" in warnings[0]


@pytest.mark.parametrize(
    ("now", "interval", "expected"),
    [
        (datetime(2025, 7, 3, 2, 14, 41, tzinfo=UTC), 60, 19.05),  # to 02:15:00 + margin
        (datetime(2025, 7, 3, 2, 14, 0, 100_000, tzinfo=UTC), 60, 59.95),
        (datetime(2025, 7, 3, 2, 14, 59, 990_000, tzinfo=UTC), 60, 0.06),  # woke early
        (datetime(2025, 7, 3, 2, 14, 41, tzinfo=UTC), 5, 5.0),  # a shorter interval wins
        (datetime(2025, 7, 3, 2, 14, 41, tzinfo=UTC), 600, 19.05),  # a longer one does not
    ],
)
def test_it_sleeps_until_just_past_the_next_minute_boundary(now, interval, expected):
    assert seconds_to_next_pass(now, interval) == pytest.approx(expected, abs=1e-6)


def test_it_ticks_a_slot_within_two_seconds_when_woken_as_it_says(time_machine):
    schedule = make_schedule(make_host(), "15 2 * * *")
    started = datetime(2025, 7, 3, 2, 14, 17, 300_000, tzinfo=UTC)  # 43 s before the slot
    time_machine.move_to(started, tick=False)
    scheduler = Scheduler(interval=60, say=lambda text: None)
    scheduler.process_one()  # initialises next_run_at to 02:15
    woken = started + timedelta(seconds=scheduler.idle_wait())
    time_machine.move_to(woken, tick=False)
    scheduler.process_one()
    job = BackupJob.objects.get()
    assert job.schedule_id == schedule.pk and job.scheduled_for == SLOT
    assert timedelta(0) <= job.created_at - SLOT < timedelta(seconds=2)
