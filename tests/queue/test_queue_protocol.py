from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from pobsync_models.models import BackupJob, BackupRun, Host
from pobsync_models.queue import (
    Beat,
    cancel,
    claim,
    enqueue,
    finish,
    heartbeat,
    peek,
    reap,
    requeue,
)
from tests.support.factories import make_config, make_host, make_job, make_run, make_snapshot

pytestmark = pytest.mark.django_db
State = BackupJob.State


def expire(job_id: int) -> None:
    BackupJob.objects.filter(pk=job_id).update(
        lease_expires_at=timezone.now() - timedelta(seconds=5)
    )


def test_it_claims_by_priority_then_due_time_then_id():
    a, b = make_host(), make_host()
    now = timezone.now()
    late = make_job(a, priority=5, run_after=now - timedelta(minutes=1))
    urgent = make_job(b, priority=1, run_after=now - timedelta(seconds=1))
    lease = claim("w:1")
    assert lease.job_id == urgent.pk
    assert claim("w:2").job_id == late.pk


def test_it_records_the_lease_worker_and_attempt_on_the_job_and_the_host():
    host = make_host()
    job = make_job(host)
    lease = claim("box:42", ttl=120)
    job.refresh_from_db()
    host.refresh_from_db()
    assert job.state == State.RUNNING and job.worker_id == "box:42" and job.attempts == 1
    assert job.lease_token == lease.token == host.lease_token
    assert host.running_job_id == job.pk
    left = (job.lease_expires_at - timezone.now()).total_seconds()
    assert 100 < left <= 121


def test_it_never_runs_two_jobs_of_one_host_at_once():
    host = make_host()
    make_job(host)
    make_job(host)
    assert claim("w:1") is not None
    assert claim("w:2") is None


def test_it_skips_jobs_not_yet_due():
    make_job(make_host(), run_after=timezone.now() + timedelta(hours=1))
    assert claim("w:1") is None


def test_it_respects_max_running_jobs():
    make_config(max_running_jobs=1)
    make_job(make_host())
    make_job(make_host())
    assert claim("w:1") is not None
    assert claim("w:2") is None


def test_it_finishes_and_frees_the_host():
    host = make_host()
    job = make_job(host)
    lease = claim("w:1")
    assert finish(lease, State.SUCCEEDED)
    job.refresh_from_db()
    host.refresh_from_db()
    assert job.state == State.SUCCEEDED and job.finished_at and job.lease_expires_at is None
    assert host.running_job_id is None and host.lease_token == ""


def test_it_fences_a_heartbeat_and_a_finish_whose_token_was_replaced():
    host = make_host()
    job = make_job(host)
    lease = claim("w:1")
    BackupJob.objects.filter(pk=job.pk).update(lease_token="stolen")
    assert heartbeat(lease) is Beat.LOST
    assert finish(lease, State.SUCCEEDED) is False
    job.refresh_from_db()
    host.refresh_from_db()
    assert job.state == State.RUNNING  # nothing written by the fenced runner
    assert host.running_job_id == job.pk


def test_it_renews_the_lease_on_heartbeat():
    job = make_job(make_host())
    lease = claim("w:1", ttl=10)
    assert heartbeat(lease, ttl=600) is Beat.OK
    job.refresh_from_db()
    assert (job.lease_expires_at - timezone.now()).total_seconds() > 500
    assert job.heartbeat_at is not None


def test_it_cancels_a_queued_job_at_once():
    job = make_job(make_host())
    assert cancel(job.pk) == "cancelled"
    job.refresh_from_db()
    assert job.state == State.CANCELLED
    assert claim("w:1") is None


def test_it_asks_the_runner_to_stop_a_running_job_through_the_heartbeat():
    job = make_job(make_host())
    lease = claim("w:1")
    assert cancel(job.pk) == "requested"
    assert heartbeat(lease) is Beat.CANCEL
    assert finish(lease, State.CANCELLED)
    assert cancel(job.pk) == "finished"


def test_it_peeks_at_a_cancel_in_one_read_without_renewing_the_lease(
    django_assert_num_queries,
):
    job = make_job(make_host())
    lease = claim("w:1")
    before = BackupJob.objects.values_list("lease_expires_at", "heartbeat_at").get(pk=job.pk)
    with django_assert_num_queries(1) as ctx:
        assert peek(lease) is Beat.OK
    assert ctx.captured_queries[0]["sql"].lstrip().upper().startswith("SELECT")
    cancel(job.pk)  # what `pobsync cancel` and the admin's action both call
    assert peek(lease) is Beat.CANCEL
    after = BackupJob.objects.values_list("lease_expires_at", "heartbeat_at").get(pk=job.pk)
    assert after == before  # peeking never writes the lease


def test_it_peeks_a_lost_lease_as_lost():
    job = make_job(make_host())
    lease = claim("w:1")
    BackupJob.objects.filter(pk=job.pk).update(lease_token="stolen")
    assert peek(lease) is Beat.LOST


def test_it_raises_for_an_unknown_job():
    with pytest.raises(BackupJob.DoesNotExist):
        cancel(999999)


def test_it_reaps_an_expired_lease_back_to_queued_then_to_failed():
    host = make_host()
    job = make_job(host, max_attempts=2)
    first = claim("w:1")
    expire(job.pk)
    assert reap().requeued == 1
    job.refresh_from_db()
    host.refresh_from_db()
    assert job.state == State.QUEUED and "lease expired" in job.error
    assert host.running_job_id is None
    assert heartbeat(first) is Beat.LOST  # the old holder is fenced

    second = claim("w:2")
    assert second.job_id == job.pk
    expire(job.pk)
    assert reap().failed == 1
    job.refresh_from_db()
    assert job.state == State.FAILED and job.error == "lease expired" and job.attempts == 2


def test_it_reaps_a_job_whose_run_committed_its_snapshot_as_succeeded():
    """The runner died between the commit point and finish(): done, not run again."""
    host = make_host()
    job = make_job(host, max_attempts=3)
    claim("w:1")
    snapshot = make_snapshot(host, timezone.now(), rsync_exit_code=0)
    run = make_run(host, "running", job=job, snapshot=snapshot, finished_at=None)
    expire(job.pk)
    assert reap().recovered == 1
    job.refresh_from_db()
    run.refresh_from_db()
    host.refresh_from_db()
    assert job.state == State.SUCCEEDED and job.attempts == 1
    assert "after the snapshot was committed" in job.error
    assert run.outcome == BackupRun.Outcome.SUCCESS and host.running_job_id is None
    assert host.last_run_outcome == "success"
    assert claim("w:2") is None


def test_it_does_not_reap_a_live_lease():
    make_job(make_host())
    claim("w:1")
    assert reap().total == 0


def test_it_requeues_without_using_an_attempt():
    host = make_host()
    job = make_job(host)
    lease = claim("w:1")
    assert requeue(lease, error="runner stopped")
    job.refresh_from_db()
    host.refresh_from_db()
    assert job.state == State.QUEUED and job.attempts == 0 and host.running_job_id is None
    # Claimable at once, even within the millisecond of the requeue: SQLite compares
    # times as text, and "...01.123000" (computed in Python) sorts after its own clock's
    # "...01.123" (CI, 2026-12-01: this claim found nothing). 50 rounds make that
    # millisecond likely.
    for _ in range(50):
        lease = claim("w:2")
        assert lease is not None and lease.job_id == job.pk
        assert requeue(lease, error="runner stopped")


def test_it_repairs_a_host_left_pointing_at_a_finished_job():
    host = make_host()
    job = make_job(host, state=State.SUCCEEDED)
    Host.objects.filter(pk=host.pk).update(running_job=job, lease_token="x")
    assert reap().hosts_repaired == 1
    assert claim("w:1") is None  # nothing queued, but the host is free again
    host.refresh_from_db()
    assert host.running_job_id is None


def test_it_gives_manual_jobs_precedence_over_scheduled_ones():
    a, b = make_host(), make_host()
    scheduled = enqueue(a, trigger=BackupJob.Trigger.SCHEDULE)
    manual = enqueue(b, prune=True)
    assert manual.priority < scheduled.priority
    assert claim("w:1").job_id == manual.pk


def test_it_claims_in_a_bounded_number_of_queries(django_assert_max_num_queries):
    for _ in range(30):
        make_job(make_host())
    with django_assert_max_num_queries(8):
        assert claim("w:1") is not None


@pytest.mark.parametrize("max_attempts", [1, 3])  # reaped to failed, reaped to queued
def test_it_marks_the_run_of_a_reaped_job_failed_in_the_same_pass(max_attempts):
    host = make_host()
    job = make_job(host, max_attempts=max_attempts)
    claim("w:1")
    lost = make_run(host, BackupRun.Outcome.RUNNING, job=job, finished_at=None)
    cli_run = make_run(make_host(), BackupRun.Outcome.RUNNING, finished_at=None)  # no job
    expire(job.pk)
    assert reap().total == 1
    lost.refresh_from_db()
    assert lost.outcome == BackupRun.Outcome.FAILED
    assert lost.message == "runner lost: lease expired" and lost.finished_at is not None
    host.refresh_from_db()  # the dashboard's status columns moved with the run
    assert (host.last_run_outcome, host.last_run_at) == ("failed", lost.started_at)
    cli_run.refresh_from_db()
    assert cli_run.outcome == BackupRun.Outcome.RUNNING


def test_it_leaves_the_run_of_a_live_lease_running():
    host = make_host()
    job = make_job(host)
    claim("w:1")
    run = make_run(host, BackupRun.Outcome.RUNNING, job=job, finished_at=None)
    assert reap().total == 0
    run.refresh_from_db()
    assert run.outcome == BackupRun.Outcome.RUNNING


def test_it_beats_in_one_statement_while_no_cancel_is_pending(django_assert_num_queries):
    make_job(make_host())
    lease = claim("w:1")
    with django_assert_num_queries(1):
        assert heartbeat(lease) is Beat.OK


def test_it_enqueues_a_job_the_database_clock_sees_as_due_at_once():
    # claim() compares run_after with the database clock, which SQLite keeps in whole
    # milliseconds and compares as text: a job enqueued in the same millisecond as the
    # claim's query stayed invisible. Many tries make that millisecond certain to occur.
    from django.db.models.functions import Now

    from pobsync_models.queue import enqueue

    host = make_host()
    for _ in range(300):
        job = enqueue(host)
        assert BackupJob.objects.filter(pk=job.pk, run_after__lte=Now()).exists()
        job.delete()
