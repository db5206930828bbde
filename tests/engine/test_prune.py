"""Applying retention: rename then delete, records marked pruned, --max-delete, safety."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from pobsync_models.models import BackupRun, GlobalConfig, SnapshotRecord
from pobsync_models.specs import SnapshotName, host_spec
from pobsync_models.storages import MARKER_FILE, default_storage, write_marker
from pobsync_runner.lock import HostLock
from pobsync_runner.prune import apply_retention
from tests.support.factories import make_config, make_host, make_run, make_snapshot

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 6, 10, 12, tzinfo=UTC)


@pytest.fixture
def daily(tmp_path):
    """Ten daily complete snapshots on disk (one read-only dir each) and in SQL."""
    root = tmp_path / "backups"
    make_config(root, keep_daily=3)
    host = make_host("app1")
    for i in range(10):
        when = NOW - timedelta(days=i)
        path = root / "app1" / str(SnapshotName.for_time(when))
        (path / "etc").mkdir(parents=True)
        (path / "etc" / "f").write_text(str(i))
        (path / "etc").chmod(0o555)
        make_snapshot(host, when, path=str(path))
    write_marker(default_storage())  # the backup root is the mounted default storage
    return root, host


def on_disk(root):
    return sorted(p.name for p in (root / "app1").iterdir() if p.name[0].isdigit())


def spec_of(host):
    from pobsync_models.models import GlobalConfig

    return host_spec(host, GlobalConfig.load())


def test_it_deletes_what_the_plan_prunes_and_keeps_the_records(daily):
    root, host = daily
    result = apply_retention(host, spec_of(host), now=NOW)
    assert len(result.deleted) == 7
    assert on_disk(root) == sorted(
        str(SnapshotName.for_time(NOW - timedelta(days=i))) for i in range(3)
    )
    pruned = host.snapshots.filter(state="pruned")
    assert pruned.count() == 7 and all(r.pruned_at == NOW for r in pruned)
    assert SnapshotRecord.objects.count() == 10


def test_it_honours_max_delete_oldest_first(daily):
    root, host = daily
    result = apply_retention(host, spec_of(host), now=NOW, max_delete=2)
    oldest = [str(SnapshotName.for_time(NOW - timedelta(days=i))) for i in (9, 8)]
    assert result.deleted == oldest
    assert len(result.held_back) == 5
    assert len(on_disk(root)) == 8
    assert "5 left for the next run" in result.summary()


def test_it_never_prunes_the_newest_complete_snapshot(daily):
    root, host = daily
    host.keep_daily = 0
    host.keep_last = 1
    host.save()
    newest = str(SnapshotName.for_time(NOW))
    apply_retention(host, spec_of(host), now=NOW)
    assert on_disk(root) == [newest]


def test_it_never_prunes_the_base_of_a_running_backup(daily):
    root, host = daily
    base = str(SnapshotName.for_time(NOW - timedelta(days=9)))
    make_run(host, outcome=BackupRun.Outcome.RUNNING, base_snapshot_name=base, finished_at=None)
    apply_retention(host, spec_of(host), now=NOW)
    assert base in on_disk(root)


def test_it_refuses_to_apply_while_a_backup_holds_the_host(daily):
    root, host = daily
    with HostLock(root / "app1"):
        with pytest.raises(CommandError, match="busy"):
            call_command("retention", "app1", "--apply", "--yes")
    assert len(on_disk(root)) == 10


def test_it_finishes_a_deletion_a_crash_left_behind(daily):
    root, host = daily
    leftover = root / "app1" / "2020-01-01T000000Z.deleting" / "x"
    leftover.mkdir(parents=True)
    apply_retention(host, spec_of(host), now=NOW)
    assert not leftover.parent.exists()


def test_the_command_shows_the_plan_with_reasons(daily, capsys):
    root, host = daily
    call_command("retention", "app1")
    out = capsys.readouterr().out
    assert "host app1: policy daily=3" in out
    assert "SNAPSHOT" in out and "REASON" in out
    assert f"{SnapshotName.for_time(NOW)}  complete  unverified  keep    daily 2026-06-10" in out
    assert "prune   no rule keeps it" in out
    assert "3 keep, 7 prune" in out
    assert len(on_disk(root)) == 10


def test_the_command_only_shows_the_plan_for_apply_without_yes(daily, capsys):
    root, host = daily
    call_command("retention", "app1", "--apply")
    assert "dry run: add --yes" in capsys.readouterr().out
    assert len(on_disk(root)) == 10


def test_the_command_applies_with_yes_and_max_delete(daily, capsys):
    root, host = daily
    call_command("retention", "app1", "--apply", "--yes", "--max-delete", "3")
    out = capsys.readouterr().out
    assert out.count("deleted ") == 3
    assert "pruned 3 snapshot(s), 4 left for the next run (--max-delete)" in out
    assert len(on_disk(root)) == 7


def test_the_command_rejects_a_negative_max_delete(daily):
    with pytest.raises(CommandError, match="use 0 or more"):
        call_command("retention", "app1", "--apply", "--yes", "--max-delete", "-1")


def test_it_prunes_nothing_on_an_unmounted_storage(daily):
    from pobsync_runner.errors import StorageUnavailableError

    root, host = daily
    (root / MARKER_FILE).unlink()
    spec = host_spec(host, GlobalConfig.load())
    with pytest.raises(StorageUnavailableError, match="no marker file"):
        apply_retention(host, spec, now=NOW)
    assert not host.snapshots.filter(state="pruned").exists()
    assert len([p for p in (root / "app1").iterdir() if p.name[0].isdigit()]) == 10
