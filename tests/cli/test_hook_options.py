"""configure-host / configure-global hook, dump and bandwidth options: stored as argv
lists, bad input refused with one line before anything is written."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from pobsync_models.models import GlobalConfig, Host
from tests.support.factories import make_config, make_host

pytestmark = pytest.mark.django_db


@pytest.fixture
def web1(tmp_path):
    make_config(tmp_path)
    return make_host("web1")


def configure(*args: str) -> None:
    call_command("configure_host", "web1", *args)


def test_it_splits_commands_like_a_shell_and_stores_argv_lists(web1):
    configure(
        "--pre", "/usr/local/bin/snap 'vg0/data lv' --size=1G",
        "--post", "/usr/bin/logger -t pobsync done",
        "--remote-pre", "systemctl stop app",
        "--dump", "pg.sql=pg_dumpall --clean",
        "--dump", "app.sqlite=sh -c 'sqlite3 /srv/app.db .dump'",
        "--dump-compress", "--dumps-may-fail", "--pre-may-fail",
        "--hook-timeout", "120", "--bwlimit", "5M",
    )  # fmt: skip
    host = Host.objects.get(name="web1")
    assert host.pre_hook == ["/usr/local/bin/snap", "vg0/data lv", "--size=1G"]
    assert host.post_hook == ["/usr/bin/logger", "-t", "pobsync", "done"]
    assert host.remote_pre == ["systemctl", "stop", "app"]
    assert host.dumps == {
        "pg.sql": ["pg_dumpall", "--clean"],
        "app.sqlite": ["sh", "-c", "sqlite3 /srv/app.db .dump"],
    }
    assert host.dump_compress and host.dumps_may_fail and host.pre_may_fail
    assert host.hook_timeout == 120 and host.bwlimit == "5M"

    configure("--no-pre", "--no-remote-pre", "--no-dumps", "--no-bwlimit")
    host.refresh_from_db()
    assert host.pre_hook == [] and host.remote_pre == [] and host.dumps == {}
    assert host.bwlimit == "" and host.post_hook == ["/usr/bin/logger", "-t", "pobsync", "done"]
    configure("--inherit-hooks")
    host.refresh_from_db()
    assert host.pre_hook is None and host.post_hook is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--pre", "snap now"], "hook executable 'snap' is not an absolute path"),
        (["--pre", ""], "pre hook is empty"),
        (["--pre", "/bin/x 'unbalanced"], "cannot be split: No closing quotation"),
        (["--post", "/bin/echo a\x00b"], "contains a NUL or newline character"),
        (["--hook-timeout", "0"], "hook timeout 0 is outside 1..86400 seconds"),
        (["--hook-timeout", "999999"], "hook timeout 999999 is outside 1..86400 seconds"),
        (["--bwlimit", "5"], "needs a number and an explicit unit"),
        (["--bwlimit", "5M;rm"], "needs a number and an explicit unit"),
        (["--dump", "../x=pg_dumpall"], "is not safe as a file name"),
        (["--dump", "nocommand"], "must look like NAME='CMD ARG...'"),
        (["--dump", "a=x", "--dump", "a=y"], "dump a is given twice"),
        (["--remote-pre=-oProxyCommand=x"], "starts with '-'"),
    ],
)
def test_it_refuses_bad_hook_input_with_one_line_and_writes_nothing(web1, args, message):
    before = Host.objects.values().get(name="web1")
    with pytest.raises(CommandError) as exc:
        configure(*args)
    assert message in str(exc.value) and "\n" not in str(exc.value)
    assert Host.objects.values().get(name="web1") == before


def test_configure_global_sets_the_default_hooks_and_bandwidth(web1):
    call_command(
        "configure_global", "--pre", "/usr/bin/true", "--bwlimit", "20MB", "--hook-timeout", "60"
    )
    config = GlobalConfig.load()
    assert config.pre_hook == ["/usr/bin/true"] and config.bwlimit == "20MB"
    assert config.hook_timeout == 60


def test_show_host_shows_hooks_dumps_and_the_bandwidth_limit(web1, capsys):
    call_command("configure_global", "--bwlimit", "20M", "--post", "/usr/bin/logger done")
    configure("--pre", "/usr/local/bin/freeze", "--dump", "db.sql=mariadb-dump --all-databases",
              "--dump-compress")  # fmt: skip
    capsys.readouterr()
    call_command("show_host", "web1")
    out = capsys.readouterr().out
    assert "bandwidth limit:" in out and "20M  (global default)" in out
    assert "pre hook:" in out and "/usr/local/bin/freeze" in out
    assert "/usr/bin/logger done  (global default)" in out
    assert "_dumps/db.sql.gz <- mariadb-dump --all-databases" in out
