from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from pobsync_models.commandbase import (
    GROUP_BACKUP,
    PobsyncCommand,
    get_host,
    require_global_config,
)
from pobsync_models.models import Host
from pobsync_models.specs import host_storage
from pobsync_models.storages import StorageSpec, marker_problem
from pobsync_runner.discovery import discover, unknown_host_dirs


class Command(PobsyncCommand):
    help = "Record the snapshots already on disk in SQL (idempotent); mark vanished ones missing."
    cli_name = "discover-snapshots"
    cli_group = GROUP_BACKUP

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", help="only this host (default: every configured host)")

    def handle(self, *args: Any, **opts: Any) -> None:
        config = require_global_config()
        hosts = [get_host(opts["host"])] if opts["host"] else list(Host.objects.all())
        by_storage: dict[StorageSpec, list[Host]] = {}
        for host in hosts:
            by_storage.setdefault(host_storage(host, config), []).append(host)
        for storage, members in by_storage.items():
            problem = marker_problem(storage)
            if problem is not None:
                # An unmounted disk would mark every snapshot missing: touch nothing.
                self.stderr.write(f"skipped: {problem}")
                continue
            root = storage.path
            report = discover(members, root)
            self.stdout.write(
                f"discovered under {root}: {report.created} new, {report.updated} updated, "
                f"{report.missing} missing, {report.linked} base link(s) set"
            )
            if not opts["host"]:
                for name in unknown_host_dirs(root, {h.name for h in Host.objects.all()}):
                    self.stderr.write(
                        f"skipped {root / name}: no host named {name!r} "
                        f"(add it with `pobsync configure-host {name} --address ...`)"
                    )
