from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser

from pobsync_models.commandbase import GROUP_QUEUE, PobsyncCommand
from pobsync_models.models import BackupJob
from pobsync_models.queue import CANCEL_REQUESTED, CANCELLED, cancel


class Command(PobsyncCommand):
    help = "Cancel a job: a queued one at once, a running one within seconds."
    cli_name = "cancel"
    cli_group = GROUP_QUEUE

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("job_id", type=int, help="job id (see `pobsync jobs`)")

    def handle(self, *args: Any, **opts: Any) -> None:
        job_id = opts["job_id"]
        try:
            result = cancel(job_id)
        except BackupJob.DoesNotExist:
            raise CommandError(f"no job {job_id} (see `pobsync jobs`)") from None
        if result == CANCELLED:
            self.stdout.write(f"job {job_id} cancelled")
        elif result == CANCEL_REQUESTED:
            self.stdout.write(
                f"job {job_id} is running: cancel requested; its runner stops rsync within "
                "seconds and marks it cancelled"
            )
        else:
            state = BackupJob.objects.values_list("state", flat=True).get(pk=job_id)
            raise CommandError(f"job {job_id} already finished ({state}); nothing to cancel")
