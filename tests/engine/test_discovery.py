"""discover-snapshots over complete, partial and metadata-less trees; idempotent."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.core.management import call_command

from pobsync_models.models import SnapshotRecord
from pobsync_models.storages import MARKER_FILE, default_storage, write_marker
from pobsync_runner.discovery import discover
from pobsync_runner.snapshots import SnapshotMeta, write_metadata
from tests.support.factories import make_config, make_host

pytestmark = pytest.mark.django_db


def snapshot(host_dir: Path, name: str, *, state="complete", base="", meta=True, suffix=""):
    path = host_dir / f"{name}{suffix}"
    (path / "etc").mkdir(parents=True)
    (path / "etc" / "hosts").write_text("127.0.0.1 localhost\n")
    if meta:
        write_metadata(
            path,
            SnapshotMeta(
                name=name,
                host=host_dir.name,
                state=state,
                started_at="2026-03-01T02:00:00+00:00",
                finished_at="2026-03-01T02:05:00+00:00" if state == "complete" else None,
                base_name=base,
                rsync_exit_code=0 if state == "complete" else None,
                files_total=1,
                bytes_total=20,
                sources=("/etc",),
                pobsync_version="0.1.0",
            ),
        )
    return path


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "backups"
    make_config(root)
    host = make_host("db1", sources=["/etc"])
    d = root / "db1"
    snapshot(d, "2026-03-01T020000Z")
    snapshot(d, "2026-03-02T020000Z", base="2026-03-01T020000Z")
    snapshot(d, "2026-03-03T020000Z", state="partial", suffix=".partial", base="2026-03-02T020000Z")
    snapshot(d, "2026-02-01T020000Z", meta=False)  # e.g. copied in from an older server
    (d / "2026-01-01T020000Z.deleting").mkdir()  # a deletion in progress: ignored
    (d / "not-a-snapshot").mkdir()
    (d / ".lock").write_text("")
    (root / "stranger").mkdir()
    write_marker(default_storage())  # the backup root is the default storage, mounted
    return root, host


def states(host) -> dict[str, str]:
    return dict(host.snapshots.values_list("name", "state"))


def test_it_records_complete_partial_and_metadata_less_snapshots(tree):
    root, host = tree
    report = discover([host], root)
    assert (report.created, report.missing) == (4, 0)
    assert states(host) == {
        "2026-03-01T020000Z": "complete",
        "2026-03-02T020000Z": "complete",
        "2026-03-03T020000Z": "partial",
        "2026-02-01T020000Z": "complete",
    }
    bare = host.snapshots.get(name="2026-02-01T020000Z")
    assert not bare.has_metadata
    assert bare.started_at == datetime(2026, 2, 1, 2, tzinfo=UTC)
    assert bare.base_name == "" and bare.path == str(root / "db1" / "2026-02-01T020000Z")
    second = host.snapshots.get(name="2026-03-02T020000Z")
    assert second.base.name == "2026-03-01T020000Z" and second.files_total == 1
    partial = host.snapshots.get(name="2026-03-03T020000Z")
    assert partial.path.endswith(".partial") and partial.base_id == second.pk


def test_it_is_idempotent(tree):
    root, host = tree
    discover([host], root)
    again = discover([host], root)
    assert not again.changed()
    assert SnapshotRecord.objects.count() == 4


def test_it_marks_records_whose_directory_is_gone_as_missing(tree):
    root, host = tree
    discover([host], root)
    import shutil

    shutil.rmtree(root / "db1" / "2026-03-01T020000Z")
    report = discover([host], root)
    assert report.missing == 1
    assert states(host)["2026-03-01T020000Z"] == "missing"
    assert host.snapshots.get(name="2026-03-02T020000Z").base.name == "2026-03-01T020000Z"


def test_it_updates_a_partial_record_that_was_committed_on_disk(tree):
    root, host = tree
    discover([host], root)
    d = root / "db1"
    (d / "2026-03-03T020000Z.partial").rename(d / "2026-03-03T020000Z")
    discover([host], root)
    assert states(host)["2026-03-03T020000Z"] == "complete"


def test_the_command_reports_counts_and_unknown_host_directories(tree, capsys):
    call_command("discover_snapshots")
    out, err = capsys.readouterr()
    assert "4 new, 0 updated, 0 missing, 2 base link(s) set" in out
    assert "stranger" in err and "configure-host stranger" in err
    call_command("discover_snapshots", "--host", "db1")
    assert "0 new, 0 updated, 0 missing, 0 base link(s) set" in capsys.readouterr().out


def test_it_touches_nothing_on_a_storage_whose_marker_is_missing(tree, capsys):
    root, host = tree
    (root / MARKER_FILE).unlink()  # as if the disk were not mounted
    call_command("discover_snapshots")
    out, err = capsys.readouterr()
    assert "skipped: storage default: no marker file" in err
    assert str(root) in err
    assert not host.snapshots.exists()
