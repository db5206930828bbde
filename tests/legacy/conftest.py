"""Helpers for the legacy YAML tests: write a config tree, run the commands, and take a
comparable picture of the SQL configuration."""

from __future__ import annotations

import textwrap
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from pobsync_models.models import GlobalConfig, Host

GLOBAL_YAML = """\
backup_root: /srv/backups
ssh:
  user: backup
  port: 22
retention:
  daily: 7
  weekly: 4
"""

WEB1_YAML = """\
address: 127.0.0.1
sources:
  - /etc
  - /srv/www
excludes:
  - "*.tmp"
schedule:
  cron: "15 2 * * *"
  prune: true
"""


def write_tree(prefix: Path, files: dict[str, str]) -> Path:
    """Write `files` (relative to <prefix>/config) and return the prefix."""
    for name, text in files.items():
        path = prefix / "config" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    return prefix


class Outcome:
    def __init__(self, out: str, err: str, error: CommandError | None) -> None:
        self.out = out
        self.err = err
        self.error = error

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def problems(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.strip()]


def run(command: str, *args: Any) -> Outcome:
    out, err = StringIO(), StringIO()
    try:
        call_command(command, *args, stdout=out, stderr=err)
    except CommandError as exc:
        return Outcome(out.getvalue(), err.getvalue(), exc)
    return Outcome(out.getvalue(), err.getvalue(), None)


def run_import(prefix: Path, *args: str) -> Outcome:
    return run("import_pobsync_configs", "--prefix", str(prefix), *args)


def run_export(prefix: Path, *args: str) -> Outcome:
    return run("export_pobsync_configs", "--prefix", str(prefix), *args)


_SKIP = {"id", "created_at", "updated_at", "running_job", "lease_token"}


def _fields(obj: Any) -> dict[str, Any]:
    return {
        f.attname: getattr(obj, f.attname)
        for f in obj._meta.concrete_fields
        if f.name not in _SKIP and f.attname not in {"running_job_id", "host_id"}
    }


def config_picture() -> dict[str, Any]:
    """Everything import/export carry, without ids and timestamps."""
    config = GlobalConfig.load()
    return {
        "global": _fields(config) if config else None,
        "hosts": {
            host.name: {
                **_fields(host),
                "schedules": [
                    {k: v for k, v in _fields(s).items() if k not in {"last_scheduled_for"}}
                    for s in host.schedules.order_by("id")
                ],
            }
            for host in Host.objects.order_by("name")
        },
    }


def tree_bytes(prefix: Path) -> dict[str, bytes]:
    root = prefix / "config"
    files = sorted(p for p in root.rglob("*") if p.is_file())
    return {str(p.relative_to(root)): p.read_bytes() for p in files}


@pytest.fixture
def prefix(tmp_path: Path) -> Path:
    return tmp_path / "opt" / "pobsync"
