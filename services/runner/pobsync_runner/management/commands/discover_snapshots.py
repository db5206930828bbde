from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import CommandParser

from pobsync_models.commandbase import (
    GROUP_BACKUP,
    PobsyncCommand,
    get_host,
    require_global_config,
)
from pobsync_models.models import Host
from pobsync_runner.discovery import discover, unknown_host_dirs


class Command(PobsyncCommand):
    help = "Record the snapshots already on disk in SQL (idempotent); mark vanished ones missing."
    cli_name = "discover-snapshots"
    cli_group = GROUP_BACKUP

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", help="only this host (default: every configured host)")

    def handle(self, *args: Any, **opts: Any) -> None:
        config = require_global_config()
        root = Path(config.backup_root)
        hosts = [get_host(opts["host"])] if opts["host"] else list(Host.objects.all())
        report = discover(hosts, root)
        self.stdout.write(
            f"discovered under {root}: {report.created} new, {report.updated} updated, "
            f"{report.missing} missing, {report.linked} base link(s) set"
        )
        if not opts["host"]:
            for name in unknown_host_dirs(root, {h.name for h in hosts}):
                self.stderr.write(
                    f"skipped {root / name}: no host named {name!r} "
                    f"(add it with `pobsync configure-host {name} --address ...`)"
                )
