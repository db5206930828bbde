from __future__ import annotations

import shlex
from datetime import UTC, datetime
from typing import Any

from django.core.management.base import CommandParser
from django.utils import timezone

from pobsync_models.commandbase import PobsyncCommand, get_host, require_global_config
from pobsync_models.models import Host
from pobsync_models.registry import relative
from pobsync_models.specs import RETENTION_FIELDS, HostSpec, host_spec


def _exact(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return "never"
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC ({relative(moment, now)})"


def health_lines(host: Host) -> list[tuple[str, str]]:
    """The dashboard's verdict on the host (pobsync_web.overview), with exact times."""
    from pobsync_web.overview import host_rows

    now = timezone.now()
    (row,) = host_rows(Host.objects.filter(pk=host.pk), now)
    full = row.host
    last_run = "never"
    if full.last_run_at is not None:
        last_run = f"{full.last_run_outcome}, started {_exact(full.last_run_at, now)}"
        if full.last_message:
            last_run += f": {full.last_message.splitlines()[0]}"
    return [
        ("status", str(row.health.health) + (" (running)" if full.running_job_id else "")),
        ("last success", _exact(full.last_success_at, now)),
        ("last run", last_run),
        ("next run", _exact(full.next_run_at, now) if full.next_run_at else "none scheduled"),
        ("snapshots", f"{row.snapshot_count} complete (newest {full.newest_snapshot or '-'})"),
    ]


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
            *health_lines(host),
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
        lines += hook_lines(host, spec)
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


def hook_lines(host: Host, spec: HostSpec) -> list[tuple[str, str]]:
    """Bandwidth, hooks and dumps as show-host prints them (docs/hooks.md)."""
    hooks = spec.hooks

    def command(argv: tuple[str, ...]) -> str:
        return shlex.join(argv) if argv else "-"

    def inherited(own: object) -> str:
        return "  (global default)" if own is None else ""

    lines = [
        (
            "bandwidth limit",
            f"{spec.bwlimit or 'none'}{'' if host.bwlimit else '  (global default)'}",
        ),
        ("pre hook", command(hooks.pre) + inherited(host.pre_hook)),
        ("post hook", command(hooks.post) + inherited(host.post_hook)),
        ("hook timeout", f"{hooks.timeout}s" + inherited(host.hook_timeout)),
        ("pre may fail", "yes" if hooks.pre_may_fail else "no"),
        ("remote pre", command(hooks.remote_pre)),
        ("remote post", command(hooks.remote_post)),
    ]
    suffix = ".gz" if hooks.dump_compress else ""
    for name, argv in hooks.dumps:
        lines.append(("dump", f"_dumps/{name}{suffix} <- {command(argv)}"))
    if hooks.dumps:
        lines.append(("dumps may fail", "yes" if hooks.dumps_may_fail else "no"))
    return lines
