"""Hooks, dumps and the bandwidth limit in the legacy YAML: export -> import gives the
same configuration, and a hand-written `hooks` section imports as documented."""

from __future__ import annotations

from pathlib import Path

import pytest

from pobsync_models.models import GlobalConfig, Host
from tests.legacy.conftest import config_picture, run_export, run_import, write_tree
from tests.support.factories import make_config, make_host

pytestmark = pytest.mark.django_db


def test_hooks_dumps_and_bandwidth_round_trip(prefix: Path):
    make_config("/srv/backups", bwlimit="20M", pre_hook=["/usr/bin/true"], hook_timeout=120)
    make_host(
        "db1",
        bwlimit="5MB",
        pre_hook=[],  # "none", which differs from "inherit the global pre hook"
        post_hook=["/usr/local/bin/notify", "db1 done"],
        hook_timeout=30,
        pre_may_fail=True,
        remote_pre=["systemctl", "stop", "app"],
        remote_post=["systemctl", "start", "app"],
        dumps={"all.sql": ["mariadb-dump", "--all-databases", "--single-transaction"]},
        dump_compress=True,
        dumps_may_fail=True,
    )
    make_host("web1")  # every hook field at its default
    original = config_picture()
    assert run_export(prefix).ok
    text = (prefix / "config" / "hosts" / "db1.yaml").read_text()
    assert "hooks:" in text and "all.sql:" in text and "bwlimit: 5MB" in text

    Host.objects.all().delete()
    GlobalConfig.objects.all().delete()
    result = run_import(prefix)
    assert result.ok, result.err
    assert config_picture() == original


def test_a_hand_written_hooks_section_imports_and_bad_commands_are_refused(prefix: Path):
    write_tree(
        prefix,
        {
            "global.yaml": """\
                backup_root: /srv/backups
                bwlimit: 50M
                hooks:
                  post: [/usr/bin/logger, -t, pobsync, done]
            """,
            "hosts/db1.yaml": """\
                address: 127.0.0.1
                sources: [/etc]
                hooks:
                  pre: inherit
                  dumps:
                    pg.sql: [pg_dumpall, --clean]
            """,
        },
    )
    result = run_import(prefix)
    assert result.ok, result.err
    host = Host.objects.get(name="db1")
    assert host.pre_hook is None and host.dumps == {"pg.sql": ["pg_dumpall", "--clean"]}
    assert GlobalConfig.load().post_hook == ["/usr/bin/logger", "-t", "pobsync", "done"]
    assert GlobalConfig.load().bwlimit == "50M"

    write_tree(
        prefix,
        {
            "hosts/db1.yaml": """\
                address: 127.0.0.1
                sources: [/etc]
                bwlimit: fast
                hooks:
                  pre: [stop-db]
            """
        },
    )
    bad = run_import(prefix)
    assert not bad.ok
    assert "is not an absolute path" in bad.err and "explicit unit" in bad.err
    assert Host.objects.get(name="db1").dumps == {"pg.sql": ["pg_dumpall", "--clean"]}
