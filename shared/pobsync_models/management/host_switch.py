"""`pobsync enable-host` / `disable-host`: one switch, two commands."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from pobsync_models.commandbase import PobsyncCommand, get_host
from pobsync_models.models import BackupJob, Host


class HostSwitchCommand(PobsyncCommand):
    enable: bool = True

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("host")

    def handle(self, *args: Any, **opts: Any) -> None:
        host = get_host(opts["host"])
        verb = "enabled" if self.enable else "disabled"
        # A conditional UPDATE of the one column: the Host row also carries the queue's
        # mutex (running_job, lease_token), which a save() could overwrite.
        changed = Host.objects.filter(pk=host.pk, enabled=not self.enable).update(
            enabled=self.enable
        )
        if not changed:
            self.stdout.write(f"host {host.name} already {verb}")
            return
        if self.enable:
            self.stdout.write(f"host {host.name} enabled: its schedules queue backups again")
            return
        self.stdout.write(f"host {host.name} disabled: its schedules queue no more backups")
        queued = list(
            BackupJob.objects.filter(host=host, state=BackupJob.State.QUEUED).values_list(
                "pk", flat=True
            )
        )
        if queued:
            ids = ", ".join(str(pk) for pk in queued)
            self.stdout.write(
                f"queued jobs still run: {ids} (cancel them with `pobsync cancel ID`)"
            )
        if host.running_job_id:
            self.stdout.write(f"job {host.running_job_id} is running and finishes normally")
