from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from pobsync_models.models import BackupJob
from pobsync_models.queue import Beat, claim, peek
from tests.support.factories import make_host, make_job

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client() -> Client:
    root = get_user_model().objects.create_superuser("carol", "carol@example.com", "pw-carol-1")
    client = Client()
    client.force_login(root)
    return client


def test_it_lists_jobs_read_only_with_queue_columns_and_filters(admin_client):
    job = make_job(make_host("web1"))
    page = admin_client.get("/admin/pobsync_models/backupjob/?state__exact=queued")
    assert page.status_code == 200
    body = page.content.decode()
    for column in ("Worker id", "Lease expires at", "Attempts", "Trigger"):
        assert column in body
    assert "web1" in body and "cancel_jobs" in body
    assert admin_client.get(f"/admin/pobsync_models/backupjob/{job.pk}/change/").status_code == 200
    assert admin_client.get("/admin/pobsync_models/backupjob/add/").status_code == 403


def test_it_cancels_selected_jobs_from_the_admin(admin_client):
    running = make_job(make_host("web2"))
    lease = claim("box:1")
    assert lease.job_id == running.pk
    queued = make_job(make_host("web1"))
    response = admin_client.post(
        "/admin/pobsync_models/backupjob/",
        {"action": "cancel_jobs", "_selected_action": [queued.pk, running.pk]},
        follow=True,
    )
    assert response.status_code == 200
    assert "1 cancelled, 1 running job(s) asked to stop" in response.content.decode()
    queued.refresh_from_db()
    running.refresh_from_db()
    assert queued.state == "cancelled" and running.cancel_requested
    assert peek(lease) is Beat.CANCEL  # what the runner's next cancel poll sees


def test_it_enqueues_backups_from_the_host_admin(admin_client):
    host = make_host("web1")
    response = admin_client.post(
        "/admin/pobsync_models/host/",
        {"action": "enqueue_backup_and_prune", "_selected_action": [host.pk]},
        follow=True,
    )
    assert "Queued 1 backup job(s)" in response.content.decode()
    job = BackupJob.objects.get()
    assert job.host == host and job.prune and job.trigger == "manual"
