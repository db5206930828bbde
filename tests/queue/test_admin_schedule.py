"""Editing a schedule's timing in the admin makes the scheduler recompute its due time."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from pobsync_models.models import Schedule
from tests.support.factories import make_config, make_host, make_schedule

pytestmark = pytest.mark.django_db
DUE = datetime(2026, 11, 28, 2, 15, tzinfo=UTC)


@pytest.fixture
def admin_client() -> Client:
    root = get_user_model().objects.create_superuser("carol", "carol@example.com", "pw-carol-1")
    client = Client()
    client.force_login(root)
    return client


def _post(client, schedule, **changes):
    data = {
        "host": schedule.host_id,
        "kind": schedule.kind,
        "cron": schedule.cron,
        "timezone": schedule.timezone,
        "prune": "on" if schedule.prune else "",
        "enabled": "on" if schedule.enabled else "",
        **changes,
    }
    return client.post(f"/admin/pobsync_models/schedule/{schedule.pk}/change/", data)


def test_it_forgets_the_due_time_when_the_cron_changes(admin_client):
    make_config()
    schedule = make_schedule(make_host("web1"), "15 2 * * *", next_run_at=DUE)
    assert _post(admin_client, schedule, cron="45 4 * * *").status_code == 302
    schedule.refresh_from_db()
    assert (schedule.cron, schedule.next_run_at) == ("45 4 * * *", None)


def test_it_keeps_the_due_time_when_only_prune_changes(admin_client):
    make_config()
    schedule = make_schedule(make_host("web1"), "15 2 * * *", next_run_at=DUE)
    assert _post(admin_client, schedule, prune="on").status_code == 302
    schedule.refresh_from_db()
    assert (schedule.prune, schedule.next_run_at) == (True, DUE)


def test_it_forgets_the_due_time_of_a_schedule_edited_inline_on_its_host(admin_client):
    make_config()
    host = make_host("web1")
    schedule = make_schedule(host, "15 2 * * *", next_run_at=DUE, timezone="UTC")
    form = {
        "name": "web1",
        "address": host.address,
        "sources": '["/srv/data"]',
        "excludes": "[]",
        "rsync_options": "[]",
        "warning_exit_codes": "[]",
        "enabled": "on",
        "schedules-TOTAL_FORMS": "1",
        "schedules-INITIAL_FORMS": "1",
        "schedules-MIN_NUM_FORMS": "0",
        "schedules-MAX_NUM_FORMS": "1000",
        "schedules-0-id": str(schedule.pk),
        "schedules-0-host": str(host.pk),
        "schedules-0-cron": "15 2 * * *",
        "schedules-0-timezone": "Europe/Amsterdam",
        "schedules-0-enabled": "on",
    }
    response = admin_client.post(f"/admin/pobsync_models/host/{host.pk}/change/", form)
    assert response.status_code == 302, response.content.decode()[:3000]
    schedule = Schedule.objects.get(pk=schedule.pk)
    assert (schedule.timezone, schedule.next_run_at) == ("Europe/Amsterdam", None)
