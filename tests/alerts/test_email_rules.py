"""Host transitions, reminders, digests and lost processes, mailed through a real SMTP
server (aiosmtpd on 127.0.0.1) by the real scheduler pass."""

from __future__ import annotations

import secrets
from datetime import timedelta

from django.utils import timezone

from pobsync_models.models import BackupJob, BackupRun, Delivery, Event, Host, WorkerProcess
from tests.alerts.helpers import email_channel, scheduler_pass
from tests.support.factories import make_config, make_host, make_job, make_run, make_schedule
from tests.support.need import free_port

FAILED, SUCCESS = BackupRun.Outcome.FAILED, BackupRun.Outcome.SUCCESS


def test_it_mails_exactly_once_per_transition(db, smtp):
    make_config()
    email_channel()
    t0 = timezone.now()
    host = make_host("h1")
    make_run(host, SUCCESS, started_at=t0 - timedelta(hours=2))
    scheduler_pass(t0)
    assert smtp.messages == []  # fine hosts send nothing

    make_run(host, FAILED, started_at=t0 - timedelta(minutes=30), message="rsync exit 23: partial")
    for minute in range(12):
        scheduler_pass(t0 + timedelta(minutes=minute))
    assert smtp.subjects() == ["h1 failing"]
    mail = smtp.messages[0]
    assert mail["To"] == "ops@example.com"
    text = mail.get_payload()
    assert "newest run failed: rsync exit 23: partial" in text
    assert "Last success: " in text and "never" not in text.split("Last success: ")[1][:6]
    assert "http://127.0.0.1:8010/dashboard/hosts/h1/" in text

    make_run(host, SUCCESS, started_at=t0 + timedelta(minutes=20))
    for minute in range(30, 40):
        scheduler_pass(t0 + timedelta(minutes=minute))
    assert smtp.subjects() == ["h1 failing", "h1 recovered"]
    assert "newest run ended with success" in smtp.messages[1].get_payload()
    assert list(Event.objects.order_by("id").values_list("kind", flat=True)) == [
        "host_failing",
        "host_recovered",
    ]
    assert set(Delivery.objects.values_list("state", flat=True)) == {"delivered"}


def test_it_reminds_every_n_hours_only_when_asked(db, smtp):
    make_config()
    email_channel("ops", remind_every_hours=2)
    email_channel("quiet")  # no reminders
    t0 = timezone.now()
    make_run(make_host("h1"), FAILED, started_at=t0 - timedelta(minutes=10))
    for hours in (0, 1, 1.9, 2, 2.5, 3.9, 4, 4.1):
        scheduler_pass(t0 + timedelta(hours=hours))
    to_ops = [str(m["Subject"]) for m in smtp.messages if m["To"] == "ops@example.com"]
    to_quiet = [str(m["Subject"]) for m in smtp.messages if m["To"] == "quiet@example.com"]
    assert to_ops == [
        "h1 failing",
        "h1 still failing (reminder 1)",
        "h1 still failing (reminder 2)",
    ]
    assert to_quiet == ["h1 failing"]


def test_it_detects_an_overdue_host_that_never_ran(db, smtp):
    make_config()
    email_channel()
    now = timezone.now()
    make_host("h1", overdue_after_hours=6)  # its own freshness target
    make_host("h2")  # no schedule and no target: 36 h
    scheduler_pass(now + timedelta(hours=1))
    assert smtp.messages == []
    for hours in (7, 8, 9):
        scheduler_pass(now + timedelta(hours=hours))
    assert smtp.subjects() == ["h1 overdue"]
    assert "no successful backup since the host was added (overdue after 6 h)" in (
        smtp.messages[0].get_payload()
    )
    scheduler_pass(now + timedelta(hours=37))
    assert smtp.subjects() == ["h1 overdue", "h2 overdue"]


def test_it_sends_only_the_chosen_hosts_and_events(db, smtp):
    make_config()
    t0 = timezone.now()
    h1, h2 = make_host("h1"), make_host("h2")
    email_channel("h2-recoveries", hosts=[h2], events=["host_recovered"])
    make_run(h1, FAILED, started_at=t0 - timedelta(minutes=10))
    make_run(h2, FAILED, started_at=t0 - timedelta(minutes=10))
    scheduler_pass(t0)
    make_run(h1, SUCCESS, started_at=t0 + timedelta(minutes=1))
    make_run(h2, SUCCESS, started_at=t0 + timedelta(minutes=1))
    scheduler_pass(t0 + timedelta(minutes=10))
    assert smtp.subjects() == ["h2 recovered"]


def test_it_sends_one_daily_digest_per_day(db, smtp):
    make_config()
    email_channel("daily", digest_hour=8, events=["host_recovered"])  # digest only, in effect
    day = (timezone.now() + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    make_run(make_host("h1"), FAILED, started_at=day - timedelta(hours=1))
    scheduler_pass(day + timedelta(hours=7))
    assert smtp.messages == []
    for hours in (9, 10, 23):
        scheduler_pass(day + timedelta(hours=hours))
    scheduler_pass(day + timedelta(days=1, hours=8, minutes=30))
    subjects = smtp.subjects()
    assert len(subjects) == 2 and all("daily digest" in s for s in subjects)
    assert "1 host(s) need attention" in subjects[0]
    assert "h1: failing since" in smtp.messages[0].get_payload()


def test_it_mails_reaped_jobs_and_lost_processes(db, smtp):
    make_config()
    email_channel()
    now = timezone.now()
    host = make_host("h1")
    make_run(host, SUCCESS, started_at=now - timedelta(hours=3))
    gone = timezone.now() - timedelta(minutes=10)
    token = secrets.token_hex(8)
    job = make_job(
        host,
        state=BackupJob.State.RUNNING,
        attempts=3,
        max_attempts=3,
        lease_token=token,
        lease_expires_at=gone,
        worker_id="box:99:dead",
        started_at=gone,
    )
    Host.objects.filter(pk=host.pk).update(running_job=job, lease_token=token)
    BackupRun.objects.create(host=host, job=job, started_at=gone)  # the run that died
    WorkerProcess.objects.create(
        worker_id="box:99:dead", kind="runner", started_at=gone, last_seen_at=gone
    )
    for _ in range(3):
        scheduler_pass(now)
    assert sorted(smtp.subjects()) == [
        "h1 failing",  # the reaped run failed ("runner lost"), so the host is failing
        "h1 job reaped (runner lost)",
        "runner box:99:dead lost",
    ]


def test_a_dead_smtp_server_is_retried_then_given_up_without_touching_backups(db, smtp, settings):
    settings.POBSYNC_NOTIFY_MAX_ATTEMPTS = 3
    settings.EMAIL_PORT = free_port()  # nothing listens there
    make_config()
    email_channel()
    t0 = timezone.now()
    host = make_host("h1")
    run = make_run(host, FAILED, started_at=t0 - timedelta(minutes=10))
    schedule = make_schedule(host, "*/5 * * * *")
    scheduler_pass(t0)
    delivery = Delivery.objects.get()
    assert delivery.state == "pending" and delivery.attempts == 1
    assert "Connection refused" in delivery.last_error
    scheduler_pass(t0 + timedelta(seconds=10))  # backing off: no attempt
    assert Delivery.objects.get().attempts == 1
    scheduler_pass(t0 + timedelta(seconds=31))
    scheduler_pass(t0 + timedelta(seconds=92))
    delivery = Delivery.objects.get()
    assert (delivery.state, delivery.attempts) == ("gave_up", 3)
    # The scheduler kept ticking (the schedule's jobs were enqueued) and the backup's
    # outcome is what the engine wrote.
    scheduler_pass(t0 + timedelta(minutes=6))
    assert Delivery.objects.get().attempts == 3  # given up stays given up
    assert BackupJob.objects.filter(schedule=schedule).exists()
    run.refresh_from_db()
    host.refresh_from_db()
    assert run.outcome == FAILED and host.last_run_outcome == FAILED
    assert smtp.messages == []


def test_a_down_smtp_server_gets_the_mail_when_it_comes_back(db, smtp, settings):
    port = smtp.port
    settings.EMAIL_PORT = free_port()
    make_config()
    email_channel()
    t0 = timezone.now()
    make_run(make_host("h1"), FAILED, started_at=t0 - timedelta(minutes=10))
    scheduler_pass(t0)
    scheduler_pass(t0 + timedelta(seconds=31))
    assert Delivery.objects.get().attempts == 2
    settings.EMAIL_PORT = port  # back up
    scheduler_pass(t0 + timedelta(seconds=95))
    assert smtp.subjects() == ["h1 failing"]
    assert Delivery.objects.get().state == "delivered"


def test_disabling_a_failing_host_sends_no_recovery_and_stops_reminders(db, smtp):
    make_config()
    email_channel(remind_every_hours=1)
    t0 = timezone.now()
    host = make_host("h1")
    make_run(host, FAILED, started_at=t0 - timedelta(minutes=10))
    scheduler_pass(t0)
    Host.objects.filter(pk=host.pk).update(enabled=False)
    for hours in (1, 2, 3):
        scheduler_pass(t0 + timedelta(hours=hours))
    assert smtp.subjects() == ["h1 failing"]
    Host.objects.filter(pk=host.pk).update(enabled=True)
    make_run(host, SUCCESS, started_at=t0 + timedelta(hours=3, minutes=1))
    scheduler_pass(t0 + timedelta(hours=3, minutes=30))
    assert smtp.subjects() == ["h1 failing", "h1 recovered"]


def test_a_bug_in_the_alerts_pass_never_stops_the_tick(db, smtp, monkeypatch):
    from pobsync_models.alerts import outbox

    def broken(now):
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(outbox, "plan", broken)
    make_config()
    t0 = timezone.now()
    schedule = make_schedule(make_host("h1"), "*/5 * * * *")
    scheduler_pass(t0)
    scheduler_pass(t0 + timedelta(minutes=6))
    assert BackupJob.objects.filter(schedule=schedule).exists()
