from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from pobsync_models.commandbase import GROUP_QUEUE, PobsyncCommand, get_host
from pobsync_models.queue import enqueue


class Command(PobsyncCommand):
    help = "Queue a manual backup of a host now; a runner picks it up."
    cli_name = "enqueue"
    cli_group = GROUP_QUEUE

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("host", help="host name (see `pobsync hosts`)")
        parser.add_argument("--prune", action="store_true", help="apply retention afterwards")

    def handle(self, *args: Any, **opts: Any) -> None:
        host = get_host(opts["host"])
        job = enqueue(host, prune=opts["prune"])
        note = "" if host.enabled else " (the host is disabled; the job runs anyway)"
        self.stdout.write(f"job {job.pk} queued for {host.name}{note}; see `pobsync jobs`")
