from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pobsync_models.models import BackupJob, Schedule
from pobsync_scheduler.daemon import Scheduler
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
