"""Export -> empty database -> import gives the same configuration; exporting that
again gives byte-identical files."""

from __future__ import annotations

from pathlib import Path

import pytest

from pobsync_models.models import GlobalConfig, Host
from tests.legacy.conftest import config_picture, run_export, run_import, tree_bytes, write_tree
from tests.support.factories import make_config, make_host, make_schedule

pytestmark = pytest.mark.django_db


def _rich_config() -> None:
    make_config(
        "/srv/b\u00e4ckups",
        ssh_user="pobsync",
        ssh_port=2200,
        ssh_key_path="/etc/pobsync/keys/id_ed25519",
        known_hosts_path="/etc/pobsync/known_hosts",
        connect_timeout=7,
        rsync_timeout=1800,
        max_running_jobs=3,
        keep_last=2,
        keep_hourly=0,
        keep_daily=10,
        keep_weekly=None,
        keep_monthly=12,
        keep_yearly=5,
    )
    web = make_host(
        "web-1.example.com",
        address="127.0.0.1",
        ssh_user="root",
        ssh_port=22,
        ssh_key_path="/root/.ssh/web key",
        sources=["/etc", "/srv/d\u00e5ta", "/home/\u6587\u6863", "/srv/yes", "/srv/123"],
        excludes=["*.tmp", "yes", "- leading dash", "#not-a-comment", "/caf\u00e9/**", "null"],
        rsync_options=["--one-file-system", "--bwlimit=5M", "-z"],
        warning_exit_codes=[23, 30],
        keep_daily=0,
        keep_monthly=3,
    )
    make_schedule(web, "15 2 * * *", timezone="Europe/Amsterdam", prune=True)
    make_schedule(web, "*/30 8-18 * * 1-5", enabled=False)
    make_schedule(web, "0 4 1 * *", timezone="America/New_York", prune=True, enabled=False)
    make_host("db_2", address="::1", sources=["/var/lib/mysql"], enabled=False)
    make_host("bare", address="127.0.0.3", sources=[])


def test_export_then_import_into_an_empty_database_gives_the_same_config(prefix: Path):
    _rich_config()
    original = config_picture()
    assert run_export(prefix).ok
    exported = tree_bytes(prefix)

    Host.objects.all().delete()
    GlobalConfig.objects.all().delete()
    result = run_import(prefix)
    assert result.ok, result.err
    assert "hosts: 3 created, 0 updated, 0 deleted, 0 unchanged" in result.out
    assert config_picture() == original

    again = run_export(prefix)
    assert again.out.strip() == "4 files already up to date"
    assert tree_bytes(prefix) == exported
    other = prefix.parent / "other"
    assert run_export(other).ok
    assert tree_bytes(other) == exported
    assert "nothing changed" in run_import(prefix).out


def test_an_operator_edit_round_trips_as_exactly_that_edit(prefix: Path):
    _rich_config()
    assert run_export(prefix).ok
    path = prefix / "config" / "hosts" / "db_2.yaml"
    path.write_text(path.read_text().replace("enabled: false", "enabled: true"))
    before = config_picture()
    result = run_import(prefix)
    assert "host db_2: updated\n  enabled: false -> true\n" in result.out
    before["hosts"]["db_2"]["enabled"] = True
    assert config_picture() == before
    # The edited file no longer matches its checksum: export keeps the operator's file
    # until told otherwise, and --force then rewrites it identically to the database.
    assert not run_export(prefix).ok
    assert run_export(prefix, "--force").ok
    assert "enabled: true" in path.read_text()


def test_a_hand_written_tree_imports_and_exports_in_the_documented_shape(prefix: Path):
    write_tree(
        prefix,
        {
            "global.yaml": """\
                # written by hand
                backup_root: /srv/backups/   # trailing slash is dropped
                ssh:
                  user: backup
                retention: {daily: 7}
            """,
            "hosts/web1.yml": """\
                address: 127.0.0.1
                port: inherit
                sources: [/etc]
                retention:
                  weekly: inherit
                  monthly: 2
                schedule: {cron: "15 2 * * *", prune: true}
            """,
        },
    )
    assert run_import(prefix).ok
    out = prefix.parent / "exported"
    assert run_export(out).ok
    assert run_import(out).out.endswith(
        "nothing changed: the database already matches the files "
        "(global configuration and 1 host)\n"
    )
    text = (out / "config" / "hosts" / "web1.yaml").read_text()
    assert "retention:\n  monthly: 2\nschedules:\n  - cron: 15 2 * * *\n" in text
