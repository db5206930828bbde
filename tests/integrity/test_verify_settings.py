"""The scheduled-verification settings and schedules, through the documented commands."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from pobsync_models.models import GlobalConfig, Schedule
from tests.support.factories import make_host


def run(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_configure_global_sets_the_verify_rule(db, tmp_path):
    run("configure_global", "--backup-root", str(tmp_path))
    config = GlobalConfig.load()
    assert (config.verify_outdated_days, config.verify_sample_percent) == (30, 5.0)
    run("configure_global", "--verify-outdated-days", "14", "--verify-sample-percent", "2.5")
    config.refresh_from_db()
    assert (config.verify_outdated_days, config.verify_sample_percent) == (14, 2.5)


@pytest.mark.parametrize(
    "args",
    [["--verify-outdated-days", "0"], ["--verify-sample-percent", "150"]],
)
def test_configure_global_refuses_a_bad_rule_in_one_line(db, tmp_path, args):
    run("configure_global", "--backup-root", str(tmp_path))
    with pytest.raises(CommandError) as exc:
        run("configure_global", *args)
    assert "\n" not in str(exc.value)
    config = GlobalConfig.load()
    assert (config.verify_outdated_days, config.verify_sample_percent) == (30, 5.0)


def test_backup_and_verify_schedules_are_separate(db):
    make_host("web1")
    run("schedule", "web1", "--cron", "15 2 * * *", "--prune")
    out = run("schedule", "web1", "--verify", "--cron", "30 4 * * 0")
    assert out.startswith("verify schedule created for web1: 30 4 * * 0 (UTC), enabled")
    kinds = dict(Schedule.objects.values_list("kind", "cron"))
    assert kinds == {"backup": "15 2 * * *", "verify": "30 4 * * 0"}
    run("schedule", "web1", "--verify", "--disable")
    assert not Schedule.objects.get(kind="verify").enabled
    assert Schedule.objects.get(kind="backup").enabled
    listing = run("schedules")
    assert "verify" in listing and "backup" in listing
    with pytest.raises(CommandError, match="--prune is for backup schedules"):
        run("schedule", "web1", "--verify", "--prune")
    with pytest.raises(CommandError, match="no verify schedule yet"):
        make_host("web2")
        run("schedule", "web2", "--verify")


def _verify_rows() -> dict[str, tuple[str, str, bool]]:
    rows = Schedule.objects.filter(kind="verify").values_list(
        "host__name", "cron", "timezone", "inherited"
    )
    return {name: (cron, tz, bool(inherited)) for name, cron, tz, inherited in rows}


def test_a_global_verify_schedule_covers_every_host_without_its_own(db, tmp_path):
    from pobsync_models.global_verify import sync_global_verify

    run("configure_global", "--backup-root", str(tmp_path))
    for name in ("web1", "web2", "db1"):
        make_host(name)
    run("schedule", "db1", "--verify", "--cron", "0 1 * * *")
    out = run("configure_global", "--verify-cron", "30  4 * * 0", "--verify-timezone", "UTC")
    assert "global verify schedule: 2 host(s) added" in out
    assert _verify_rows() == {
        "web1": ("30 4 * * 0", "UTC", True),
        "web2": ("30 4 * * 0", "UTC", True),
        "db1": ("0 1 * * *", "UTC", False),  # its own schedule wins
    }
    listing = run("schedules")
    assert "verify (global)" in listing
    # a new host gets the global schedule on the scheduler's next pass
    make_host("web3")
    assert sync_global_verify().created == 1
    assert _verify_rows()["web3"] == ("30 4 * * 0", "UTC", True)
    # a host given its own verify schedule leaves the global one
    run("schedule", "web2", "--verify", "--cron", "0 2 * * *")
    assert _verify_rows()["web2"] == ("0 2 * * *", "UTC", False)
    # a new global cron retimes every inherited row (and only those)
    run("configure_global", "--verify-cron", "0 5 * * 6", "--verify-timezone", "Europe/Amsterdam")
    rows = _verify_rows()
    assert rows["web1"] == rows["web3"] == ("0 5 * * 6", "Europe/Amsterdam", True)
    assert rows["db1"] == ("0 1 * * *", "UTC", False)
    assert not sync_global_verify().changed  # idempotent
    # clearing it removes the inherited rows, never a host's own
    out = run("configure_global", "--verify-cron", "")
    assert "2 removed" in out
    assert set(_verify_rows()) == {"db1", "web2"}


def test_the_scheduler_enqueues_verify_jobs_from_the_global_schedule(db, tmp_path):
    from datetime import timedelta

    from django.utils import timezone

    from pobsync_models.models import BackupJob
    from pobsync_scheduler.daemon import Scheduler

    run("configure_global", "--backup-root", str(tmp_path), "--verify-cron", "*/5 * * * *")
    host = make_host("web1")
    disabled = make_host("web2", enabled=False)
    now = timezone.now()
    first = Scheduler(interval=60, now=now, send_inline=True, say=lambda _t: None)
    first.process_one()  # adds both hosts' rows and initialises their next run
    assert Schedule.objects.filter(inherited=True).count() == 2
    later = Scheduler(
        interval=60, now=now + timedelta(minutes=6), send_inline=True, say=lambda _t: None
    )
    later.process_one()
    jobs = list(BackupJob.objects.values_list("host_id", "kind", "trigger"))
    assert jobs == [(host.pk, "verify", "schedule")]  # none for the disabled host
    assert disabled.pk not in {h for h, _, _ in jobs}


@pytest.mark.parametrize("cron", ["61 * * * *", "0 0 31 2 *", "x"])
def test_a_bad_global_verify_cron_is_one_line_and_changes_nothing(db, tmp_path, cron):
    run("configure_global", "--backup-root", str(tmp_path))
    make_host("web1")
    with pytest.raises(CommandError) as exc:
        run("configure_global", "--verify-cron", cron)
    assert "\n" not in str(exc.value)
    assert GlobalConfig.load().verify_cron == ""
    assert not Schedule.objects.exists()
