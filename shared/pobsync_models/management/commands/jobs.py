from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser

from pobsync_models.commandbase import GROUP_QUEUE, PobsyncCommand, format_table, get_host
from pobsync_models.models import BackupJob


def _t(when) -> str:
    return when.strftime("%Y-%m-%d %H:%M:%S") if when else ""


class Command(PobsyncCommand):
    help = "List queue jobs (backups, restores), newest first (times in UTC)."
    cli_name = "jobs"
    cli_group = GROUP_QUEUE

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--state", choices=BackupJob.State.values, help="only this state")
        parser.add_argument("--kind", choices=BackupJob.Kind.values, help="only this kind")
        parser.add_argument("--host", help="only this host")
        parser.add_argument("--limit", type=int, default=50, help="rows to show (default 50)")

    def handle(self, *args: Any, **opts: Any) -> None:
        if opts["limit"] < 1:
            raise CommandError("--limit must be at least 1")
        jobs = BackupJob.objects.select_related("host").order_by("-id")
        if opts["state"]:
            jobs = jobs.filter(state=opts["state"])
        if opts["kind"]:
            jobs = jobs.filter(kind=opts["kind"])
        if opts["host"]:
            jobs = jobs.filter(host=get_host(opts["host"]))
        rows = [
            (
                job.pk,
                job.kind,
                job.host.name,
                job.state + (" (cancel requested)" if job.cancel_requested else ""),
                job.trigger,
                _t(job.scheduled_for or job.run_after),
                _t(job.started_at),
                _t(job.finished_at),
                f"{job.attempts}/{job.max_attempts}",
                job.worker_id,
                _t(job.lease_expires_at),
                job.error.splitlines()[0][:60] if job.error else "",
            )
            for job in jobs[: opts["limit"]]
        ]
        if not rows:
            self.stdout.write("no jobs")
            return
        headers = (
            "id",
            "kind",
            "host",
            "state",
            "trigger",
            "due",
            "started",
            "finished",
            "attempts",
            "worker",
            "lease expires",
            "error",
        )
        self.stdout.write(format_table(headers, rows))
