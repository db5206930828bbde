from __future__ import annotations

import os
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from pobsync_models import registry
from pobsync_models.models import BackupJob, Schedule, WorkerProcess
from pobsync_models.queue import claim
from tests.support.factories import make_host, make_job, make_schedule

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_it_creates_then_updates_a_schedule():
    make_host("web1")
    out = run(
        "schedule", "web1", "--cron", "15 2 * * *", "--prune", "--timezone", "Europe/Amsterdam"
    )
    assert "schedule created for web1" in out
    schedule = Schedule.objects.get()
    assert (schedule.cron, schedule.timezone, schedule.prune) == (
        "15 2 * * *",
        "Europe/Amsterdam",
        True,
    )
    assert schedule.next_run_at > timezone.now()
    run("schedule", "web1", "--disable")
    schedule.refresh_from_db()
    assert not schedule.enabled and schedule.next_run_at is None
    run("schedule", "web1", "--enable")
    schedule.refresh_from_db()
    assert schedule.enabled and schedule.next_run_at is not None
    assert Schedule.objects.count() == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--cron", "61 * * * *"], "not valid"),
        (["--cron", "15 2 * *"], "exactly 5 fields"),
        (["--cron", "15 2 * * *", "--timezone", "Mars/Olympus"], "unknown"),
        (["--cron", "0 0 31 2 *"], "never fires"),
        ([], "no schedule yet"),
    ],
)
def test_it_rejects_bad_schedules_in_one_line(args, message):
    make_host("web1")
    with pytest.raises(CommandError, match=message) as exc:
        run("schedule", "web1", *args)
    assert "\n" not in str(exc.value)


def test_it_refuses_to_guess_between_several_schedules():
    host = make_host("web1")
    make_schedule(host)
    make_schedule(host, "0 12 * * *")
    with pytest.raises(CommandError, match="2 schedules; edit them in the admin"):
        run("schedule", "web1", "--cron", "0 3 * * *")


def test_it_lists_schedules_with_their_next_run():
    make_schedule(make_host("web1"), "15 2 * * *", timezone="Europe/Amsterdam")
    out = run("schedules")
    assert "web1" in out and "15 2 * * *" in out and "(pending)" in out and "CE" in out


def test_it_enqueues_lists_and_cancels_jobs():
    make_host("web1")
    out = run("enqueue", "web1", "--prune")
    job = BackupJob.objects.get()
    assert f"job {job.pk} queued for web1" in out and job.prune
    table = run("jobs", "--state", "queued", "--host", "web1")
    assert "LEASE EXPIRES" in table and "manual" in table and "0/3" in table
    assert "cancelled" in run("cancel", str(job.pk))
    with pytest.raises(CommandError, match="already finished"):
        run("cancel", str(job.pk))
    with pytest.raises(CommandError, match="no job 999999"):
        run("cancel", "999999")


def test_it_requests_cancellation_of_a_running_job():
    job = make_job(make_host("web1"))
    claim("box:1")
    assert "cancel requested" in run("cancel", str(job.pk))
    assert "cancel requested" in run("jobs")


def test_it_lists_workers_with_their_age():
    registry.touch("box:1", "runner", started_at=timezone.now() - timedelta(hours=3))
    WorkerProcess.objects.create(
        worker_id="box:2",
        kind="scheduler",
        started_at=timezone.now() - timedelta(days=1),
        last_seen_at=timezone.now() - timedelta(minutes=10),
    )
    out = run("workers")
    assert "box:1" in out and "3 h" in out and "10 min ago (stale)" in out


def test_it_reports_health_of_a_process_on_this_machine():
    with pytest.raises(CommandError, match="unhealthy: no runner"):
        run("health", "--kind", "runner")
    registry.touch(registry.current_worker_id(), "runner", started_at=timezone.now())
    assert "ok: runner" in run("health", "--kind", "runner")
    WorkerProcess.objects.update(last_seen_at=timezone.now() - timedelta(seconds=200))
    with pytest.raises(CommandError):
        run("health", "--kind", "runner")
    assert "ok" in run("health", "--kind", "runner", "--max-age", "300")
    # A process of the same kind on another machine does not count for this one.
    WorkerProcess.objects.update(worker_id=f"elsewhere:{os.getpid()}", last_seen_at=timezone.now())
    with pytest.raises(CommandError):
        run("health", "--kind", "runner")


@pytest.mark.django_db(transaction=True)  # the daemon closes connections between passes
def test_it_runs_one_scheduler_pass_and_deregisters():
    make_schedule(make_host("web1"), "15 2 * * *", next_run_at=timezone.now())
    out = run("scheduler", "--once", "--now", timezone.now().isoformat())
    assert "scheduler " in out and " started" in out and " stopped" in out
    assert BackupJob.objects.filter(trigger=BackupJob.Trigger.SCHEDULE).count() == 1
    assert not WorkerProcess.objects.exists()


@pytest.mark.parametrize("command", ["scheduler", "runner"])
def test_it_refuses_a_daemon_without_a_mode_or_with_a_bad_interval(command):
    with pytest.raises(CommandError, match="--interval must be positive"):
        run(command, "--once", "--interval", "0")
    with pytest.raises(CommandError, match="--loop --once"):
        run(command)


def test_it_gives_each_process_its_own_worker_id_even_with_a_shared_hostname():
    import subprocess
    import sys

    ours = registry.current_worker_id()
    assert ours == registry.current_worker_id()  # fixed for the life of the process
    host, pid, tag = ours.split(":")
    assert (host, int(pid)) == (registry.this_machine(), os.getpid()) and len(tag) == 4
    code = (
        "import django; django.setup(); from pobsync_models import registry; "
        "print(registry.current_worker_id())"
    )
    other = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert other.startswith(f"{host}:") and other != ours
