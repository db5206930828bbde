from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser

from pobsync_models.commandbase import GROUP_BACKUP, PobsyncCommand, get_host, require_global_config
from pobsync_models.models import Host
from pobsync_models.specs import host_spec
from pobsync_models.storages import marker_problem
from pobsync_models.units import format_bytes
from pobsync_runner.spacescan import scan_locked


class Command(PobsyncCommand):
    help = "Count real disk use per host and what each snapshot added and would free."
    cli_name = "space-scan"
    cli_group = GROUP_BACKUP

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", help="only this host (default: every host)")
        parser.add_argument(
            "--full", action="store_true", help="walk every snapshot, not only changed ones"
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        config = require_global_config()
        hosts = [get_host(opts["host"])] if opts["host"] else list(Host.objects.all())
        failed = False
        for host in hosts:
            spec = host_spec(host, config)
            problem = marker_problem(spec.storage) if spec.storage else "no storage"
            if problem is not None:
                self.stderr.write(f"skipped {host.name}: {problem}")
                failed = True
                continue
            result = scan_locked(host, spec.host_dir, full=opts["full"])
            if result is None:
                self.stderr.write(f"skipped {host.name}: busy or no snapshots yet")
                continue
            self.stdout.write(
                f"{host.name}: {format_bytes(result.used_bytes)} in {result.used_inodes} "
                f"inodes on storage {spec.storage.name}; walked {len(result.walked)} snapshot(s)"
            )
        if failed and opts["host"]:
            raise CommandError(f"space scan of {opts['host']} skipped")
