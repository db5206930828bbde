from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from pobsync_models.commandbase import PobsyncCommand, get_host, require_global_config
from pobsync_models.specs import RETENTION_FIELDS, host_spec


class Command(PobsyncCommand):
    help = "Show one host's configuration with the global defaults resolved."
    cli_name = "show-host"

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("host")

    def handle(self, *args: Any, **opts: Any) -> None:
        host = get_host(opts["host"])
        config = require_global_config()
        spec = host_spec(host, config)

        def origin(own: object) -> str:
            return "" if own not in (None, "") else "  (global default)"

        lines = [
            ("host", host.name),
            ("enabled", "yes" if host.enabled else "no"),
            ("address", host.address),
            ("ssh user", f"{spec.ssh.user}{origin(host.ssh_user)}"),
            ("ssh port", f"{spec.ssh.port}{origin(host.ssh_port)}"),
            ("ssh key", f"{spec.ssh.key_path}{origin(host.ssh_key_path)}"),
            ("known_hosts", str(spec.ssh.known_hosts_path)),
            ("storage", spec.storage.name if spec.storage else "-"),
            ("snapshots in", str(spec.host_dir)),
            ("sources", ", ".join(spec.sources) or "(none: add --source PATH)"),
            ("excludes", ", ".join(spec.excludes) or "-"),
            ("rsync options", " ".join(spec.rsync_options) or "-"),
            ("warning exit codes", ", ".join(str(c) for c in sorted(spec.warning_exit_codes))),
        ]
        for field in RETENTION_FIELDS:
            lines.append(
                (
                    field.replace("_", " "),
                    f"{getattr(spec.retention, field)}{origin(getattr(host, field))}",
                )
            )
        for schedule in host.schedules.all():
            state = "" if schedule.enabled else " (disabled)"
            prune = " --prune" if schedule.prune else ""
            lines.append(("schedule", f"{schedule.cron} {schedule.timezone}{prune}{state}"))
        width = max(len(k) for k, _ in lines) + 2
        for key, value in lines:
            self.stdout.write(f"{(key + ':').ljust(width)}{value}")
