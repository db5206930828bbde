from __future__ import annotations

from datetime import datetime
from typing import Any

from django.utils import timezone

from pobsync_models.commandbase import PobsyncCommand, format_table
from pobsync_models.models import Host
from pobsync_models.registry import relative


def host_table(now: datetime) -> list[tuple[str, ...]]:
    """One row per host, judged and ordered exactly as on the dashboard (most urgent
    first), from the dashboard's own queries (pobsync_web.overview, a fixed number)."""
    from pobsync_web.overview import host_rows

    rows = sorted(host_rows(Host.objects.all(), now), key=lambda row: row.sort_key)
    table = []
    for row in rows:
        host, health = row.host, row.health
        status = str(health.health)
        if health.failing and health.overdue:
            status += ", overdue"
        if host.running_job_id:
            status += " (running)"
        last_run = "never"
        if host.last_run_at is not None:
            last_run = f"{host.last_run_outcome} {relative(host.last_run_at, now)}"
        if not host.enabled:
            next_run = "-"
        elif host.next_run_at is not None:
            next_run = relative(host.next_run_at, now)
        else:
            next_run = "pending" if row.schedules else "no schedule"
        table.append(
            (
                host.name,
                status,
                relative(host.last_success_at, now),
                last_run,
                next_run,
                str(row.snapshot_count),
                host.address,
            )
        )
    return table


class Command(PobsyncCommand):
    help = "List the hosts with their health: status, last success, last run, next run."
    cli_name = "hosts"

    def handle(self, *args: Any, **opts: Any) -> None:
        rows = host_table(timezone.now())
        if not rows:
            self.stdout.write("no hosts configured (add one with `pobsync configure-host`)")
            return
        headers = ("host", "status", "last success", "last run", "next run", "snapshots", "address")
        self.stdout.write(format_table(headers, rows))
