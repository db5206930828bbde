"""The claim's storage filter and caps, and why a queued job waits (SQLite, in-process;
the same under real processes on MariaDB: test_runners.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.utils import timezone

from pobsync_models.models import BackupJob, Storage, WorkerProcess
from pobsync_models.queue import claim, finish
from pobsync_models.storages import MARKER_FILE, job_wait_reason, wait_reasons, write_marker
from pobsync_runner.serving import Service
from tests.support.factories import make_config, make_host, make_job

pytestmark = pytest.mark.django_db


@pytest.fixture
def two(tmp_path):
    root, disk = tmp_path / "root", tmp_path / "disk"
    root.mkdir()
    disk.mkdir()
    make_config(root)
    default = Storage.objects.get(is_default=True)
    other = Storage.objects.create(name="disk2", path=str(disk))
    return default, other


def test_a_runner_claims_only_jobs_on_its_storages(two):
    default, other = two
    on_default = make_job(make_host("a"))  # no storage of its own: the default
    on_other = make_job(make_host("b", storage=other))
    assert claim("w:1", storages={other.pk}).job_id == on_other.pk
    assert claim("w:1", storages={other.pk}) is None
    assert claim("w:2", storages=set()) is None
    assert claim("w:2", storages={default.pk}).job_id == on_default.pk


def test_a_job_carries_its_hosts_storage_and_follows_the_host_when_it_moves(two):
    default, other = two
    host = make_host("a")  # on the default
    queued, running, done = (make_job(host) for _ in range(3))
    assert {j.storage_id for j in BackupJob.objects.all()} == {default.pk}
    BackupJob.objects.filter(pk=running.pk).update(state="running")
    BackupJob.objects.filter(pk=done.pk).update(state="succeeded")
    host.storage = other
    host.save()
    stored = dict(BackupJob.objects.values_list("pk", "storage_id"))
    # only the queued job moves: the others ran (or run) on the default storage
    assert stored == {queued.pk: other.pk, running.pk: default.pk, done.pk: default.pk}
    assert claim("w:1", storages={default.pk}) is None
    assert claim("w:1", storages={other.pk}).job_id == queued.pk


def test_jobs_the_scheduler_queues_carry_their_hosts_storage(two):
    from datetime import timedelta

    from pobsync_models.models import Schedule
    from pobsync_scheduler.tick import tick

    default, other = two
    now = timezone.now()
    for host in (make_host("a"), make_host("b", storage=other)):
        Schedule.objects.create(host=host, cron="* * * * *", next_run_at=now - timedelta(minutes=1))
    assert tick(now).enqueued == 2
    stored = dict(BackupJob.objects.values_list("host__name", "storage_id"))
    assert stored == {"a": default.pk, "b": other.pk}
    on_other = BackupJob.objects.get(host__name="b")
    assert claim("w:1", storages={other.pk}).job_id == on_other.pk


def test_a_storage_cap_holds_and_frees_with_the_jobs(two):
    _, other = two
    Storage.objects.filter(pk=other.pk).update(max_running_jobs=1)
    for name in ("b1", "b2"):
        make_job(make_host(name, storage=other))
    first = claim("w:1")
    assert first is not None
    assert claim("w:2") is None  # b2's job waits: disk2 is at its cap
    WorkerProcess.objects.create(
        worker_id="w:2", kind="runner", started_at=timezone.now(),
        last_seen_at=timezone.now(), storages=["default", "disk2"],
    )  # fmt: skip
    queued = BackupJob.objects.get(state="queued")
    reasons = wait_reasons([(queued.pk, other.pk)])
    assert job_wait_reason(queued, reasons) == "waiting: storage disk2 is at its cap (1 running)"
    finish(first, BackupJob.State.SUCCEEDED)
    assert claim("w:2").job_id == queued.pk


def test_a_job_says_when_no_live_runner_serves_its_storage(two):
    _, other = two
    job = make_job(make_host("b", storage=other))
    WorkerProcess.objects.create(
        worker_id="w:1", kind="runner", started_at=timezone.now(),
        last_seen_at=timezone.now(), storages=["default"],
    )  # fmt: skip
    assert wait_reasons([(job.pk, other.pk)]) == {
        job.pk: "waiting: no live runner serves storage disk2"
    }
    WorkerProcess.objects.filter(worker_id="w:1").update(storages=["default", "disk2"])
    assert wait_reasons([(job.pk, other.pk)]) == {}


def test_it_claims_with_a_storage_filter_in_a_bounded_number_of_queries(
    two, django_assert_max_num_queries
):
    _, other = two
    Storage.objects.filter(pk=other.pk).update(max_running_jobs=5)
    for _ in range(30):
        make_job(make_host(storage=other))
    with django_assert_max_num_queries(12):
        assert claim("w:1", storages={other.pk}) is not None


def test_a_runner_without_storage_serves_what_it_sees_and_looks_again(two):
    default, other = two
    service = Service()
    worker = WorkerProcess.objects.create(
        worker_id="w:9", kind="runner", started_at=timezone.now(), last_seen_at=timezone.now()
    )
    service.refresh("w:9", force=True)
    assert service.ids == {default.pk}  # disk2 has no marker yet
    write_marker(other)
    assert not service.refresh("w:9")  # not due yet
    assert service.refresh("w:9", force=True)
    assert service.ids == {default.pk, other.pk}
    worker.refresh_from_db()
    assert worker.storages == ["default", "disk2"]
    (Path(other.path) / MARKER_FILE).unlink()  # the disk is unmounted
    service.refresh("w:9", force=True)
    assert service.ids == {default.pk}


def test_pobsync_workers_lists_the_storages_each_runner_serves(two, capsys):
    from django.core.management import call_command

    WorkerProcess.objects.create(
        worker_id="box:7", kind="runner", started_at=timezone.now(),
        last_seen_at=timezone.now(), storages=["default", "disk2"],
    )  # fmt: skip
    call_command("workers")
    out = capsys.readouterr().out
    assert "STORAGES" in out
    assert "default, disk2" in out.splitlines()[1]
