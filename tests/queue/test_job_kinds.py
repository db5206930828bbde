"""Job kinds: one table, one claim and one per-host mutex for backups and restores;
the runner dispatches on kind; the queue's views show the kind."""

from __future__ import annotations

import json
import threading
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from pobsync_models.models import BackupJob, RestoreRequest
from pobsync_models.queue import claim, enqueue, finish
from pobsync_runner.backup import HostBusy, run_backup
from pobsync_runner.jobkinds import JobResult, execute
from tests.support.factories import make_config, make_host

pytestmark = pytest.mark.django_db
Kind = BackupJob.Kind


def restore_job(host, **kw) -> BackupJob:
    request = RestoreRequest.objects.create(
        host=host,
        snapshot_name="2026-11-27T020000Z",
        paths=["/etc"],
        target=RestoreRequest.Target.DIR,
        target_dir="/tmp/x",
        requested_by="cli:test",
    )
    return enqueue(host, kind=Kind.RESTORE, restore=request, **kw)


def test_it_never_runs_a_restore_beside_a_backup_of_the_same_host():
    web1, db1 = make_host("web1"), make_host("db1")
    backup = enqueue(web1)
    restore = restore_job(web1)
    other = restore_job(db1)
    first = claim("r1")
    assert first.job_id == backup.pk  # the older of the two, same priority
    second = claim("r2")
    assert second.job_id == other.pk  # web1 is busy: its restore waits
    assert claim("r3") is None
    assert finish(first, BackupJob.State.SUCCEEDED)
    third = claim("r3")
    assert third.job_id == restore.pk
    assert BackupJob.objects.get(pk=restore.pk).restore.paths == ["/etc"]


def test_it_dispatches_on_kind_and_fails_an_unknown_kind():
    web1 = make_host("web1")
    seen = []

    def fake_restore(job, *, stop, worker_id):
        seen.append((job.kind, worker_id))
        return JobResult(BackupJob.State.SUCCEEDED)

    job = restore_job(web1)
    result = execute(
        job, stop=threading.Event(), worker_id="w1", overrides={Kind.RESTORE: fake_restore}
    )
    assert result == JobResult(BackupJob.State.SUCCEEDED) and seen == [("restore", "w1")]
    odd = BackupJob(host=web1, kind="archive", run_after=timezone.now())
    result = execute(odd, stop=threading.Event(), worker_id="w1")
    assert result.state == BackupJob.State.FAILED and "unknown job kind 'archive'" in result.error


def test_the_jobs_command_shows_and_filters_the_kind():
    web1 = make_host("web1")
    enqueue(web1)
    restore_job(web1)
    out = StringIO()
    call_command("jobs", stdout=out)
    lines = out.getvalue().splitlines()
    assert lines[0].split()[:3] == ["ID", "KIND", "HOST"]
    assert [line.split()[1] for line in lines[1:]] == ["restore", "backup"]
    out = StringIO()
    call_command("jobs", "--kind", "backup", stdout=out)
    assert [line.split()[1] for line in out.getvalue().splitlines()[1:]] == ["backup"]


def test_the_api_and_queue_page_show_the_kind(staff_client):
    web1 = make_host("web1")
    enqueue(web1)
    job = restore_job(web1)
    body = json.loads(staff_client.get("/api/jobs/", {"kind": "restore"}).content)
    assert [(j["id"], j["kind"], j["restore"]) for j in body["results"]] == [
        (job.pk, "restore", job.restore_id)
    ]
    bad = staff_client.get("/api/jobs/", {"kind": "nope"})
    assert bad.status_code == 400 and "kind" in json.loads(bad.content)["error"]
    page = staff_client.get("/dashboard/queue/")
    assert page.status_code == 200
    assert b"<td>restore</td>" in page.content and b"<td>backup</td>" in page.content


def test_a_cli_backup_refuses_while_a_restore_job_holds_the_host(tmp_path):
    make_config(tmp_path)
    web1 = make_host("web1")
    job = restore_job(web1)
    assert claim("r1").job_id == job.pk
    with pytest.raises(HostBusy, match=f"restore job {job.pk} is running"):
        run_backup(web1)
    assert not web1.runs.exists()
