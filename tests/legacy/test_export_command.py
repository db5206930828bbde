"""export_pobsync_configs: the exact format, determinism, atomic replacement, and
refusing to overwrite files someone changed."""

from __future__ import annotations

from pathlib import Path

import pytest

from pobsync_models.legacy_yaml.writer import is_untouched_export
from pobsync_models.models import Host
from tests.legacy.conftest import run_export, tree_bytes
from tests.support.factories import make_config, make_host, make_schedule

pytestmark = pytest.mark.django_db

HEADER = """\
# Exported by pobsync (`pobsync export-configs`) from its SQL configuration.
# The running pobsync service does NOT read this file: the database is the source of
# truth. Edit it and run `pobsync import-configs` to apply a change, or use
# `pobsync configure-global` / `configure-host`. Format: docs/legacy-yaml.md
"""


@pytest.fixture
def configured(db):
    make_config("/srv/backups", keep_daily=7, keep_weekly=4, ssh_key_path="/etc/pobsync/id")
    web1 = make_host(
        "web1",
        ssh_user="backup",
        ssh_port=2222,
        sources=["/etc", "/srv/d\u00e5ta"],
        excludes=["*.tmp", "/caf\u00e9/**"],
        rsync_options=["--bwlimit=5M"],
        warning_exit_codes=[23],
        keep_daily=14,
        keep_yearly=0,
    )
    make_schedule(web1, "15 2 * * *", timezone="Europe/Amsterdam", prune=True)
    make_schedule(web1, "0 */4 * * 1-5", enabled=False)
    make_host("db1", address="db.example", enabled=False)


def _body(path: Path) -> str:
    text = path.read_text(encoding="utf-8")
    assert text.startswith(HEADER)
    checksum, _, body = text.removeprefix(HEADER).partition("\n")
    assert checksum.startswith("# export-sha256: ")
    return body


def test_it_writes_the_documented_format(configured, prefix: Path):
    result = run_export(prefix)
    assert result.ok, result.err
    config = prefix / "config"
    assert result.out.splitlines() == [
        f"{config}/global.yaml: created",
        f"{config}/hosts/db1.yaml: created",
        f"{config}/hosts/web1.yaml: created",
    ]
    assert _body(config / "global.yaml") == (
        "backup_root: /srv/backups\n"
        "ssh:\n  user: root\n  port: 22\n  key: /etc/pobsync/id\n  connect_timeout: 10\n"
        "rsync_timeout: 900\nmax_running_jobs: 0\n"
        "retention:\n  daily: 7\n  weekly: 4\n"
    )
    assert _body(config / "hosts" / "web1.yaml") == (
        "name: web1\nenabled: true\naddress: 127.0.0.1\nuser: backup\nport: 2222\n"
        "sources:\n  - /etc\n  - /srv/d\u00e5ta\n"
        "excludes:\n  - '*.tmp'\n  - /caf\u00e9/**\n"
        "rsync_options:\n  - --bwlimit=5M\n"
        "warning_exit_codes:\n  - 23\n"
        "retention:\n  daily: 14\n  yearly: 0\n"
        "schedules:\n"
        "  - cron: 15 2 * * *\n    timezone: Europe/Amsterdam\n    prune: true\n"
        "    enabled: true\n"
        "  - cron: 0 */4 * * 1-5\n    timezone: UTC\n    prune: false\n    enabled: false\n"
    )
    assert _body(config / "hosts" / "db1.yaml") == (
        "name: db1\nenabled: false\naddress: db.example\nsources:\n  - /srv/data\n"
        "excludes: []\nrsync_options: []\nwarning_exit_codes: []\nschedules: []\n"
    )
    assert (config / "hosts" / "web1.yaml").stat().st_mode & 0o777 == 0o640


def test_a_second_export_changes_no_byte_and_rewrites_nothing(configured, prefix: Path):
    assert run_export(prefix).ok
    before = tree_bytes(prefix)
    inode = (prefix / "config" / "global.yaml").stat().st_ino
    result = run_export(prefix)
    assert result.out.strip() == "3 files already up to date"
    assert tree_bytes(prefix) == before
    assert (prefix / "config" / "global.yaml").stat().st_ino == inode


def test_it_replaces_an_untouched_export_by_renaming_a_new_file(configured, prefix: Path):
    assert run_export(prefix).ok
    path = prefix / "config" / "hosts" / "web1.yaml"
    inode = path.stat().st_ino
    Host.objects.filter(name="web1").update(address="127.0.0.2")
    result = run_export(prefix)
    assert result.out.splitlines() == [f"{path}: updated", "2 files already up to date"]
    assert "address: 127.0.0.2\n" in path.read_text()
    assert path.stat().st_ino != inode  # a new file renamed over the old one
    assert sorted(p.name for p in path.parent.iterdir()) == ["db1.yaml", "web1.yaml"]


def test_it_refuses_to_overwrite_an_edited_file_and_writes_nothing(configured, prefix: Path):
    assert run_export(prefix).ok
    web1 = prefix / "config" / "hosts" / "web1.yaml"
    web1.write_text(web1.read_text().replace("port: 2222", "port: 2200"))
    Host.objects.filter(name="db1").update(address="db2.example")
    before = tree_bytes(prefix)
    result = run_export(prefix)
    assert not result.ok
    assert result.problems == [
        f"{web1}: changed since pobsync exported it (or not written by pobsync)"
    ]
    assert str(result.error) == (
        "1 file would be overwritten; nothing was written: move them away, import them "
        "first, or use --force"
    )
    assert tree_bytes(prefix) == before  # db1.yaml was not updated either


def test_it_refuses_a_file_pobsync_did_not_write(configured, prefix: Path):
    own = prefix / "config" / "global.yaml"
    own.parent.mkdir(parents=True)
    own.write_text("backup_root: /srv/backups\n")
    result = run_export(prefix)
    assert result.problems == [
        f"{own}: changed since pobsync exported it (or not written by pobsync)"
    ]
    assert own.read_text() == "backup_root: /srv/backups\n"


def test_force_overwrites_an_edited_file(configured, prefix: Path):
    assert run_export(prefix).ok
    web1 = prefix / "config" / "hosts" / "web1.yaml"
    web1.write_text(web1.read_text() + "# my note\n")
    result = run_export(prefix, "--force")
    assert result.ok
    assert f"{web1}: updated" in result.out
    assert is_untouched_export(web1.read_bytes())


def test_a_dry_run_writes_nothing(configured, prefix: Path):
    result = run_export(prefix, "--dry-run")
    assert f"{prefix / 'config' / 'global.yaml'}: would be created" in result.out
    assert "dry run: nothing was written" in result.out
    assert not prefix.exists()


def test_it_mentions_host_files_without_a_host(configured, prefix: Path):
    assert run_export(prefix).ok
    Host.objects.filter(name="db1").delete()
    result = run_export(prefix)
    stale = prefix / "config" / "hosts" / "db1.yaml"
    assert (
        f"note: {stale} has no host in the database and was left alone; "
        "import-configs would create that host again"
    ) in result.out
    assert stale.exists()


def test_it_needs_a_global_configuration(db, prefix: Path):
    result = run_export(prefix)
    assert str(result.error) == (
        "no global configuration yet: run `pobsync configure-global --backup-root PATH`"
    )


def test_it_reports_an_unwritable_prefix_in_one_line(configured, tmp_path: Path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    result = run_export(blocker)
    assert str(result.error).startswith("cannot write")
    assert "Not a directory" in str(result.error)
