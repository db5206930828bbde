"""Hooks, dumps and the bandwidth limit on the host page, in /api/hosts/<name>/ and in
the admin (validated argv fields, no free-text shell)."""

from __future__ import annotations

import json

from pytest_django.asserts import assertContains

from pobsync_models.models import BackupRun, GlobalConfig, Host
from tests.support.factories import make_run


def configure(demo) -> Host:
    config = GlobalConfig.load()
    config.bwlimit, config.post_hook = "20M", ["/usr/bin/logger", "backup done"]
    config.save()
    host = demo["db1"]
    host.pre_hook = ["/usr/local/bin/freeze", "--all"]
    host.remote_pre = ["systemctl", "stop", "app"]
    host.dumps = {"db.sql": ["mariadb-dump", "--all-databases", "--single-transaction"]}
    host.dump_compress = True
    host.save()
    make_run(
        host,
        BackupRun.Outcome.SUCCESS,
        hook_log="--- pre: /usr/local/bin/freeze --all (0.1s, ok)\nfrozen 3 tables\n",
        dumps=[{"name": "db.sql", "file": "_dumps/db.sql.gz", "bytes": 2048, "seconds": 1.5,
                "linked": True, "error": ""}],
    )  # fmt: skip
    return host


def test_the_host_page_shows_hooks_dumps_and_the_bandwidth_limit(staff_client, demo):
    configure(demo)
    response = staff_client.get("/dashboard/hosts/db1/")
    assertContains(response, "/usr/local/bin/freeze --all")
    assertContains(response, "/usr/bin/logger backup done")
    assertContains(response, "20M")
    assertContains(response, "_dumps/db.sql.gz ← mariadb-dump --all-databases --single-transaction")
    assertContains(response, "dump db.sql: 2.0 KiB in 1.5s (unchanged, hard-linked)")
    assertContains(response, "frozen 3 tables")


def test_the_api_shows_hooks_dumps_bandwidth_and_each_runs_dumps(staff_client, demo):
    configure(demo)
    body = json.loads(staff_client.get("/api/hosts/db1/").content)
    config = body["config"]
    assert config["bwlimit"] == "20M" and "bwlimit" in config["inherited"]
    assert config["hooks"]["pre"] == ["/usr/local/bin/freeze", "--all"]
    assert config["hooks"]["post"] == ["/usr/bin/logger", "backup done"]
    assert "post_hook" in config["inherited"] and "pre_hook" not in config["inherited"]
    assert config["hooks"]["remote_pre"] == ["systemctl", "stop", "app"]
    assert config["dumps"] == {
        "db.sql": {
            "command": ["mariadb-dump", "--all-databases", "--single-transaction"],
            "file": "_dumps/db.sql.gz",
        }
    }
    run = body["recent_runs"][0]
    assert run["dumps"][0]["linked"] is True and "frozen 3 tables" in run["hook_log"]


def test_the_admin_refuses_a_hook_that_is_not_an_absolute_argv(admin_client, demo):
    host = demo["db1"]
    url = f"/admin/pobsync_models/host/{host.pk}/change/"
    data = {
        "name": host.name,
        "address": host.address,
        "sources": json.dumps(host.sources),
        "excludes": "[]",
        "rsync_options": "[]",
        "warning_exit_codes": "[]",
        "remote_pre": "[]",
        "remote_post": "[]",
        "dumps": "{}",
        "enabled": "on",
        "pre_hook": "\"sh -c 'stop-db; rm -rf /'\"",  # a shell string, not an argv
        "schedules-TOTAL_FORMS": "0",
        "schedules-INITIAL_FORMS": "0",
    }
    response = admin_client.post(url, data)
    assert response.status_code == 200  # the form again, with the error
    assertContains(response, "hook must be a list of strings (an argv)")
    data["pre_hook"] = '["stop-db"]'
    assertContains(admin_client.post(url, data), "is not an absolute path")
    data["bwlimit"] = "5"
    data["pre_hook"] = '["/usr/local/bin/stop-db"]'
    assertContains(admin_client.post(url, data), "needs a number and an explicit unit")
    host.refresh_from_db()
    assert host.pre_hook is None and host.bwlimit == ""
    data["bwlimit"] = "5M"
    assert admin_client.post(url, data).status_code == 302
    host.refresh_from_db()
    assert host.pre_hook == ["/usr/local/bin/stop-db"] and host.bwlimit == "5M"
