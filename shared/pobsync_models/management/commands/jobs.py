from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser

from pobsync_models.commandbase import GROUP_QUEUE, PobsyncCommand, format_table, get_host
from pobsync_models.management.commands.show_job import job_lines
from pobsync_models.models import BackupJob
from pobsync_models.storages import job_wait_reason, wait_reasons


def _t(when) -> str:
    return when.strftime("%Y-%m-%d %H:%M:%S") if when else ""


REASON_WIDTH = 60
ELLIPSIS = "..."


def _reason(error: str) -> str:
    """The first line of a job's reason, cut to fit the table; "..." says there is more."""
    if not error:
        return ""
    lines = error.strip().splitlines() or [""]
    first = lines[0]
    if len(first) > REASON_WIDTH:
        return first[: REASON_WIDTH - len(ELLIPSIS)] + ELLIPSIS
    return first + (f" {ELLIPSIS}" if len(lines) > 1 else "")


class Command(PobsyncCommand):
    help = "List queue jobs (backups, restores), newest first (times in UTC)."
    cli_name = "jobs"
    cli_group = GROUP_QUEUE

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--state", choices=BackupJob.State.values, help="only this state")
        parser.add_argument("--kind", choices=BackupJob.Kind.values, help="only this kind")
        parser.add_argument("--host", help="only this host")
        parser.add_argument("--limit", type=int, default=50, help="rows to show (default 50)")
        parser.add_argument(
            "--id",
            type=int,
            metavar="N",
            help="show job N in full (its whole reason and its runs), like `pobsync show-job N`",
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        if opts["id"] is not None:
            for line in job_lines(opts["id"]):
                self.stdout.write(line)
            return
        if opts["limit"] < 1:
            raise CommandError("--limit must be at least 1")
        jobs = BackupJob.objects.select_related("host").order_by("-id")
        if opts["state"]:
            jobs = jobs.filter(state=opts["state"])
        if opts["kind"]:
            jobs = jobs.filter(kind=opts["kind"])
        if opts["host"]:
            jobs = jobs.filter(host=get_host(opts["host"]))
        jobs = list(jobs[: opts["limit"]])
        reasons = wait_reasons(
            (j.pk, j.host.storage_id) for j in jobs if j.state == BackupJob.State.QUEUED
        )
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
                _reason(job_wait_reason(job, reasons) or job.error),
            )
            for job in jobs
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
            "error / waiting for",
        )
        self.stdout.write(format_table(headers, rows))
        if any(row[-1].endswith(ELLIPSIS) for row in rows):
            self.stdout.write(f"({ELLIPSIS}: cut short; `pobsync jobs --id N` shows a job in full)")
