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
