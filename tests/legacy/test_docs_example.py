"""The complete example in docs/legacy-yaml.md imports as documented."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pobsync_models.models import GlobalConfig, Host
from tests.legacy.conftest import run_import, write_tree

pytestmark = pytest.mark.django_db

DOC = Path(__file__).resolve().parents[2] / "docs" / "legacy-yaml.md"


def test_the_documented_example_imports(prefix: Path):
    blocks = re.findall(r"```yaml\n(.*?)```", DOC.read_text(encoding="utf-8"), re.DOTALL)
    global_yaml, host_yaml = blocks
    write_tree(prefix, {"global.yaml": global_yaml, "hosts/web1.yaml": host_yaml})
    result = run_import(prefix)
    assert result.ok, result.err
    config = GlobalConfig.load()
    assert (config.keep_last, config.keep_daily, config.keep_hourly) == (3, 7, None)
    host = Host.objects.get(name="web1")
    assert host.sources == ["/etc", "/srv/www", "/home/j\u00fcrgen"]
    assert (host.ssh_port, host.keep_daily, host.keep_monthly) == (2222, 14, None)
    assert (config.bwlimit, config.post_hook[0], host.bwlimit) == ("20M", "/usr/bin/logger", "5M")
    assert host.dumps["all.sql"][0] == "mariadb-dump" and host.remote_pre[0] == "systemctl"
    assert (host.pre_hook[0], host.hook_timeout, host.dump_compress) == (
        "/usr/local/sbin/lvm-snap",
        300,
        True,
    )
    assert [(s.cron, s.timezone, s.prune, s.enabled) for s in host.schedules.order_by("id")] == [
        ("15 2 * * *", "Europe/Amsterdam", True, True),
        ("0 */4 * * 1-5", "UTC", False, True),
    ]
