"""The CLI as an operator meets it (issue 10, item 9): one-line errors without Python
class names, host health in `pobsync hosts`, a job in full, `pobsync health` without
options, remove/disable/enable a host, the runner's log line per finished job and the
admin's model names."""

from __future__ import annotations

import os
from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.apps import apps
from django.contrib.auth import get_user_model
from django.core.management import call_command, load_command_class
from django.core.management.base import CommandError
from django.test import Client
from django.utils import timezone

from pobsync_models.models import (
    BackupJob,
    BackupRun,
    Host,
    Schedule,
    SnapshotRecord,
    WorkerProcess,
)
from pobsync_models.queue import claim
from pobsync_models.registry import this_machine
from pobsync_models.storages import MARKER_FILE
from pobsync_runner.lock import HostLock
from pobsync_runner.worker import Runner, finished_line
from tests.support.factories import (
    make_config,
    make_host,
    make_job,
    make_run,
    make_schedule,
    make_snapshot,
)

pytestmark = pytest.mark.django_db


def pobsync(command: str, *args: str) -> str:
    out = StringIO()
    call_command(command, *args, stdout=out, stderr=StringIO())
    return out.getvalue()


# -- errors --------------------------------------------------------------------------


def test_it_prints_errors_without_the_commanderror_prefix(capsys):
    command = load_command_class("pobsync_models", "show_host")
    with pytest.raises(SystemExit) as exc:
        command.run_from_argv(["pobsync", "show-host", "nosuch"])
    assert exc.value.code == 1
    assert capsys.readouterr().err == "pobsync: unknown host 'nosuch' (see `pobsync hosts`)\n"


# -- hosts ---------------------------------------------------------------------------


def test_hosts_shows_each_hosts_health_most_urgent_first(tmp_path):
    make_config(tmp_path)
    now = timezone.now()
    ok = make_host("ok1")
    make_run(ok, "success", now - timedelta(hours=3))
    Schedule.objects.filter(pk=make_schedule(ok).pk).update(next_run_at=now + timedelta(hours=5))
    failing = make_host("bad1")
    make_run(failing, "success", now - timedelta(hours=30))
    make_run(failing, "failed", now - timedelta(hours=2))
    make_host("new1")
    make_host("off1", enabled=False)
    lines = pobsync("hosts").splitlines()
    assert lines[0].split() == [
        "HOST",
        "STATUS",
        "LAST",
        "SUCCESS",
        "LAST",
        "RUN",
        "NEXT",
        "RUN",
    ] + [
        "SNAPSHOTS",
        "ADDRESS",
    ]
    names = [line.split()[0] for line in lines[1:]]
    assert names == ["bad1", "new1", "ok1", "off1"]
    bad, new, good, off = lines[1:]
    assert bad.split()[1] == "failing"
    assert "29 h ago" in bad and "failed 2 h ago" in bad and "no schedule" in bad
    assert new.split()[1:3] == ["new", "never"]
    assert good.split()[1] == "ok" and "success 3 h ago" in good and "in 4 h" in good
    assert off.split()[1] == "disabled"


def test_show_host_shows_the_health_with_exact_times(tmp_path):
    make_config(tmp_path)
    host = make_host("web1", sources=["/srv"])
    make_run(host, "failed", timezone.now() - timedelta(hours=1), message="rsync exit 23: oops")
    out = pobsync("show_host", "web1")
    assert "status:" in out and "failing" in out
    assert "last run:" in out and "failed, started 20" in out and "rsync exit 23: oops" in out
    assert "last success:       never" in out


# -- jobs ----------------------------------------------------------------------------


LONG = (
    "rsync exit 23 (some files could not be transferred): rsync: [sender] "
    'send_files failed to open "/srv/data/a-rather-long-file-name.bin": Permission denied'
)


def test_jobs_marks_a_cut_reason_and_jobs_id_shows_it_whole():
    host = make_host("web1")
    job = make_job(host, state=BackupJob.State.FAILED, error=LONG + "\nsecond line")
    make_run(host, "failed", job=job, message=LONG, snapshot_name="2026-11-30T021500Z")
    table = pobsync("jobs")
    assert LONG not in table and LONG[:40] in table and "..." in table
    assert "`pobsync jobs --id N` shows a job in full" in table
    full = pobsync("jobs", "--id", str(job.pk))
    assert LONG in full and "second line" in full
    assert "host:" in full and "web1" in full and "attempts:" in full
    assert f"run {job.runs.get().pk}: failed" in full and "2026-11-30T021500Z" in full
    assert pobsync("show_job", str(job.pk)) == full


def test_show_job_refuses_an_unknown_id():
    with pytest.raises(CommandError, match=r"unknown job 424242 \(see `pobsync jobs`\)"):
        pobsync("show_job", "424242")


# -- health --------------------------------------------------------------------------


def _seen(kind: str, seconds_ago: float = 1) -> None:
    at = timezone.now() - timedelta(seconds=seconds_ago)
    WorkerProcess.objects.create(
        worker_id=f"{this_machine()}:{os.getpid()}:{kind}",
        kind=kind,
        started_at=at,
        last_seen_at=at,
    )


def test_health_without_options_checks_the_scheduler_and_a_runner():
    with pytest.raises(CommandError, match="no scheduler and no runner on"):
        pobsync("health")
    _seen("runner")
    with pytest.raises(CommandError, match="no scheduler on"):
        pobsync("health")
    _seen("scheduler")
    out = pobsync("health")
    assert out.startswith("ok: scheduler ") and "\nok: runner " in out
    assert pobsync("health", "--kind", "runner").startswith("ok: runner ")


# -- disable / enable ----------------------------------------------------------------


def test_disable_and_enable_host_switch_only_the_enabled_flag():
    host = make_host("web1")
    Host.objects.filter(pk=host.pk).update(lease_token="runner-token")
    queued = make_job(host)
    out = pobsync("disable_host", "web1")
    assert "host web1 disabled" in out and f"queued jobs still run: {queued.pk}" in out
    assert Host.objects.values_list("enabled", "lease_token").get(pk=host.pk) == (
        False,
        "runner-token",
    )
    assert pobsync("disable_host", "web1").strip() == "host web1 already disabled"
    assert "host web1 enabled" in pobsync("enable_host", "web1")
    assert Host.objects.get(pk=host.pk).enabled
    with pytest.raises(CommandError, match="unknown host 'nosuch'"):
        pobsync("enable_host", "nosuch")


# -- remove-host ---------------------------------------------------------------------


@pytest.fixture
def stored(tmp_path) -> tuple[Host, Path, Path]:
    """web1 with a schedule, a run, a job and a snapshot on disk that holds a symlink to
    a file outside the backup root (hostile content: it must never be followed)."""
    root = tmp_path / "backups"
    root.mkdir()
    make_config(root)
    host = make_host("web1")
    make_schedule(host)
    make_run(host, "success")
    make_job(host, state=BackupJob.State.SUCCEEDED)
    snap = make_snapshot(host, timezone.now() - timedelta(hours=1))
    data = root / "web1" / snap.name
    data.mkdir(parents=True)
    (data / "file").write_text("data")
    outside = tmp_path / "outside.txt"
    outside.write_text("not pobsync's")
    (data / "link").symlink_to(outside)
    os.symlink(tmp_path, data / "dirlink")
    return host, root / "web1", outside


def test_remove_host_keeps_the_snapshots_by_default(stored):
    host, host_dir, _ = stored
    out = pobsync("remove_host", "web1")
    assert "host web1 removed" in out and f"stay in {host_dir}" in out
    assert not Host.objects.exists() and not Schedule.objects.exists()
    assert not BackupRun.objects.exists() and not BackupJob.objects.exists()
    assert not SnapshotRecord.objects.exists()
    assert len([p for p in host_dir.iterdir() if p.name[:1].isdigit()]) == 1


def test_remove_host_deletes_snapshots_only_with_yes(stored):
    host, host_dir, outside = stored
    with pytest.raises(CommandError, match="nothing changed: add --yes"):
        pobsync("remove_host", "web1", "--delete-snapshots")
    assert Host.objects.filter(pk=host.pk).exists() and host_dir.is_dir()
    out = pobsync("remove_host", "web1", "--delete-snapshots", "--yes")
    assert f"deleted {host_dir}" in out
    assert not host_dir.exists() and not Host.objects.exists()
    # no trash left behind: only the storage's own marker stays
    assert [p.name for p in host_dir.parent.iterdir()] == [MARKER_FILE]
    assert outside.read_text() == "not pobsync's"  # the symlinks were not followed


def test_remove_host_refuses_a_host_that_is_being_backed_up(stored):
    host, host_dir, _ = stored
    make_job(host)
    lease = claim("w:1")
    with pytest.raises(CommandError, match=f"being backed up \\(job {lease.job_id}\\)"):
        pobsync("remove_host", "web1", "--delete-snapshots", "--yes")
    Host.objects.filter(pk=host.pk).update(running_job=None, lease_token="")
    with HostLock(host_dir):  # a CLI backup holds the directory
        with pytest.raises(CommandError, match="host web1 is busy"):
            pobsync("remove_host", "web1", "--delete-snapshots", "--yes")
        with pytest.raises(CommandError, match="host web1 is busy"):
            pobsync("remove_host", "web1")
    assert Host.objects.filter(pk=host.pk).exists() and host_dir.is_dir()


# -- the runner's log ----------------------------------------------------------------


def failing_executor(host, *, job=None, worker_id="", **kw) -> BackupRun:
    return make_run(
        host,
        "failed",
        job=job,
        worker_id=worker_id,
        message="rsync exit 255 (ssh failed): Connection refused\nmore detail",
    )


def warning_executor(host, *, job=None, worker_id="", **kw) -> BackupRun:
    return make_run(host, "warning", job=job, message="rsync exit 24 (files vanished)")


# transaction=True: the runner calls close_old_connections(), which closes a connection
# inside the test's transaction (autocommit off) on MariaDB.
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("executor", "line"),
    [
        ("failing_executor", "failed: rsync exit 255 (ssh failed): Connection refused"),
        ("warning_executor", "succeeded with a warning: rsync exit 24 (files vanished)"),
    ],
)
def test_the_runner_logs_each_finished_jobs_outcome_and_reason(executor, line):
    job = make_job(make_host("web1"))
    said: list[str] = []
    runner = Runner(interval=1, say=said.append, executor=f"{__name__}.{executor}")
    runner.run_job(claim(runner.worker_id))
    assert said[-1] == f"job {job.pk}: {line}"


def test_a_clean_success_is_one_word_and_no_word_is_said_twice():
    assert finished_line("succeeded", "") == "succeeded"
    assert finished_line("cancelled", "cancelled; partial snapshot X kept\nrest") == (
        "cancelled; partial snapshot X kept"
    )
    assert finished_line("failed", "lease expired") == "failed: lease expired"


# -- admin ---------------------------------------------------------------------------


def test_every_model_name_is_spelled_right_in_the_admin():
    for model in apps.get_app_config("pobsync_models").get_models():
        singular, plural = model._meta.verbose_name, model._meta.verbose_name_plural
        assert not plural.endswith("ss"), (model.__name__, plural)
        spelled = {singular, singular + "s", singular + "es"}
        if singular.endswith("y"):
            spelled.add(singular[:-1] + "ies")
        assert plural in spelled, (model.__name__, plural)
    get_user_model().objects.create_superuser("root", "root@example.invalid", "pw")
    client = Client()
    client.login(username="root", password="pw")  # noqa: S106
    page = client.get("/admin/").content.decode()
    assert "Worker processes" in page and "processs" not in page
