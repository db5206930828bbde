"""`pobsync storage ...`, configure-global/-host with storages, migration 0005."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from pobsync_models.models import Host, Storage
from pobsync_models.specs import host_spec
from pobsync_models.storages import MARKER_FILE, marker_problem, spec_of
from tests.support.factories import make_host


def run(*argv: str, capsys) -> str:
    call_command(*argv)
    return capsys.readouterr().out


@pytest.fixture
def configured(db, tmp_path, capsys):
    root = tmp_path / "root"
    run("configure_global", "--backup-root", str(root), capsys=capsys)
    return root


def test_it_makes_the_backup_root_the_marked_default_storage(configured):
    default = Storage.objects.get(is_default=True)
    assert (default.name, default.path) == ("default", str(configured))
    marker = json.loads((configured / MARKER_FILE).read_text())
    assert marker == {"storage": "default", "marker_id": default.marker_id}
    assert marker_problem(spec_of(default)) is None


def test_it_moves_the_default_storage_with_configure_global(configured, tmp_path, capsys):
    out = run("configure_global", "--backup-root", str(tmp_path / "new"), capsys=capsys)
    assert f"marked {tmp_path / 'new'} as storage default" in out
    assert Storage.objects.get(is_default=True).path == str(tmp_path / "new")
    assert Storage.objects.count() == 1


def test_it_adds_a_storage_with_its_marker(configured, tmp_path, capsys):
    disk = tmp_path / "disk2"
    disk.mkdir()
    out = run(
        "storage", "add", "disk2", "--path", str(disk), "--max-running-jobs", "2",
        "--min-free-space", "10G", "--min-free-inodes", "3%", capsys=capsys,
    )  # fmt: skip
    assert f"storage disk2 added at {disk}" in out
    s = Storage.objects.get(name="disk2")
    assert (s.max_running_jobs, s.min_free_space, s.min_free_inodes) == (2, "10G", "3%")
    assert s.is_default is None
    assert json.loads((disk / MARKER_FILE).read_text())["marker_id"] == s.marker_id
    listing = run("storage", "list", capsys=capsys)
    assert "default (default)" in listing and "disk2" in listing and "NOT MOUNTED" not in listing
    shown = run("storage", "show", "disk2", capsys=capsys)
    assert "min free space    10G" in shown and "marker            ok" in shown


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["bad/name", "--path", "{disk}"], "storage name 'bad/name' is not valid"),
        (["d2", "--path", "relative"], "d2: "),
        (["d2", "--path", "{disk}/missing"], "is not a directory: create it or mount the disk"),
        (["d2", "--path", "{disk}", "--min-free-space", "lots"], "'lots' is not a minimum"),
        (["d2", "--path", "{root}"], "already a storage"),
    ],
)
def test_it_refuses_a_bad_storage_in_one_line_writing_nothing(configured, tmp_path, argv, message):
    disk = tmp_path / "disk"
    disk.mkdir()
    argv = [a.format(disk=disk, root=configured) for a in argv]
    with pytest.raises(CommandError, match=message) as caught:
        call_command("storage", "add", *argv)
    assert "\n" not in str(caught.value)
    assert Storage.objects.count() == 1
    assert not (disk / MARKER_FILE).exists()


def test_it_refuses_a_disk_that_belongs_to_another_storage(configured, tmp_path, capsys):
    disk = tmp_path / "disk"
    disk.mkdir()
    run("storage", "add", "d1", "--path", str(disk), capsys=capsys)
    Storage.objects.filter(name="d1").delete()  # the disk still carries d1's marker
    with pytest.raises(CommandError, match="already marks storage 'd1'"):
        call_command("storage", "add", "d2", "--path", str(disk))


def test_it_moves_a_host_to_another_storage_explicitly(configured, tmp_path, capsys):
    disk = tmp_path / "disk"
    disk.mkdir()
    run("storage", "add", "disk2", "--path", str(disk), capsys=capsys)
    run("configure_host", "web1", "--address", "127.0.0.1", "--source", "/srv", capsys=capsys)
    host = Host.objects.get(name="web1")
    assert host_spec(host, _config()).host_dir == configured / "web1"
    out = run("configure_host", "web1", "--storage", "disk2", capsys=capsys)
    assert "storage: (inherit) -> disk2" in out  # (inherit): the default storage
    assert "existing snapshots stay where they are" in out
    host.refresh_from_db()
    spec = host_spec(host, _config())
    assert (spec.storage.name, spec.host_dir) == ("disk2", disk / "web1")
    with pytest.raises(CommandError, match="unknown storage 'nope'"):
        call_command("configure_host", "web1", "--storage", "nope")


def _config():
    from pobsync_models.models import GlobalConfig

    return GlobalConfig.load()


def test_it_sets_caps_and_remarks_a_storage(configured, capsys):
    run("storage", "set", "default", "--max-running-jobs", "3", capsys=capsys)
    assert Storage.objects.get(name="default").max_running_jobs == 3
    with pytest.raises(CommandError, match="nothing to change"):
        call_command("storage", "set", "default")
    (configured / MARKER_FILE).unlink()
    assert "no marker file" in marker_problem(spec_of(Storage.objects.get(name="default")))
    run("storage", "mark", "default", capsys=capsys)
    assert marker_problem(spec_of(Storage.objects.get(name="default"))) is None


def test_it_takes_a_disk_over_from_another_database_only_when_told(configured, capsys):
    # The disk's marker names the "default" storage of the database this server used
    # before (switching from SQLite to MariaDB): same name, another identity.
    old = {"storage": "default", "marker_id": "0" * 32}
    (configured / MARKER_FILE).write_text(json.dumps(old))
    default = Storage.objects.get(name="default")
    assert "not this one" in marker_problem(spec_of(default))
    with pytest.raises(CommandError, match="--take-over if its snapshots are now this one's"):
        call_command("storage", "mark", "default")
    assert json.loads((configured / MARKER_FILE).read_text()) == old  # untouched
    with pytest.raises(CommandError, match="storage mark default --take-over"):
        call_command("configure_global", "--backup-root", str(configured))
    run("storage", "mark", "default", "--take-over", capsys=capsys)
    assert marker_problem(spec_of(default)) is None


def test_the_runner_refuses_an_unknown_storage(configured):
    with pytest.raises(CommandError, match="unknown storage 'nope'"):
        call_command("runner", "--once", "--storage", "nope")


@pytest.mark.django_db(transaction=True)
def test_migration_0010_turns_the_backup_root_into_the_default_storage(tmp_path):
    before = [("pobsync_models", "0009_job_kinds_restore")]
    after = [("pobsync_models", "0010_storages")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    try:
        old = executor.loader.project_state(before).apps
        old.get_model("pobsync_models", "GlobalConfig").objects.create(
            pk=1, backup_root=str(tmp_path)
        )
        old.get_model("pobsync_models", "Host").objects.create(name="web1", address="127.0.0.1")
        executor = MigrationExecutor(connection)
        executor.migrate(after)
        new = executor.loader.project_state(after).apps
        storage = new.get_model("pobsync_models", "Storage").objects.get()
        assert (storage.name, storage.path, storage.is_default) == ("default", str(tmp_path), True)
        host = new.get_model("pobsync_models", "Host").objects.get()
        assert host.storage_id == storage.pk
        marker = json.loads((tmp_path / MARKER_FILE).read_text())
        assert marker == {"storage": "default", "marker_id": storage.marker_id}
    finally:
        MigrationExecutor(connection).migrate(
            MigrationExecutor(connection).loader.graph.leaf_nodes()
        )


def test_a_host_without_a_storage_lives_on_the_default(configured):
    host = make_host("db1")
    assert host.storage_id is None
    assert host_spec(host, _config()).host_dir == configured / "db1"
