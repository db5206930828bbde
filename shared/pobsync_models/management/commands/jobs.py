from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser

from pobsync_models.commandbase import GROUP_QUEUE, PobsyncCommand, format_table, get_host
from pobsync_models.models import BackupJob
from pobsync_models.storages import job_wait_reason, wait_reasons


def _first_line(text: str) -> str:
    return text.splitlines()[0][:72] if text else ""


def _t(when) -> str:
    return when.strftime("%Y-%m-%d %H:%M:%S") if when else ""


class Command(PobsyncCommand):
    help = "List backup jobs, newest first (times in UTC)."
    cli_name = "jobs"
    cli_group = GROUP_QUEUE

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--state", choices=BackupJob.State.values, help="only this state")
        parser.add_argument("--host", help="only this host")
        parser.add_argument("--limit", type=int, default=50, help="rows to show (default 50)")

    def handle(self, *args: Any, **opts: Any) -> None:
        if opts["limit"] < 1:
            raise CommandError("--limit must be at least 1")
        jobs = BackupJob.objects.select_related("host").order_by("-id")
        if opts["state"]:
            jobs = jobs.filter(state=opts["state"])
        if opts["host"]:
            jobs = jobs.filter(host=get_host(opts["host"]))
        jobs = list(jobs[: opts["limit"]])
        reasons = wait_reasons(
            (j.pk, j.host.storage_id) for j in jobs if j.state == BackupJob.State.QUEUED
        )
        rows = [
            (
                job.pk,
                job.host.name,
                job.state + (" (cancel requested)" if job.cancel_requested else ""),
                job.trigger,
                _t(job.scheduled_for or job.run_after),
                _t(job.started_at),
                _t(job.finished_at),
                f"{job.attempts}/{job.max_attempts}",
                job.worker_id,
                _t(job.lease_expires_at),
                _first_line(job_wait_reason(job, reasons) or job.error),
            )
            for job in jobs
        ]
        if not rows:
            self.stdout.write("no jobs")
            return
        headers = (
            "id",
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
