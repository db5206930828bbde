from __future__ import annotations

from datetime import datetime
from typing import Any

from django.core.management.base import CommandError, CommandParser

from pobsync_models.commandbase import GROUP_QUEUE, PobsyncCommand
from pobsync_models.models import BackupJob


def _t(when: datetime | None) -> str:
    return when.strftime("%Y-%m-%d %H:%M:%S UTC") if when else "-"


def job_lines(job_id: int) -> list[str]:
    """Everything about one job, its full reason and every run of it, as `key: value`
    lines (times in UTC). CommandError for an unknown id."""
    job = BackupJob.objects.select_related("host", "schedule").filter(pk=job_id).first()
    if job is None:
        raise CommandError(f"unknown job {job_id} (see `pobsync jobs`)")
    state = job.state + (" (cancel requested)" if job.cancel_requested else "")
    trigger = job.trigger
    if job.schedule_id:
        trigger += (
            f" (schedule {job.schedule_id}: {job.schedule.cron}, slot {_t(job.scheduled_for)})"
        )
    fields = [
        ("job", str(job.pk)),
        ("host", job.host.name),
        ("state", state),
        ("trigger", trigger),
        ("prune", "yes" if job.prune else "no"),
        ("priority", str(job.priority)),
        ("run after", _t(job.run_after)),
        ("created", _t(job.created_at)),
        ("started", _t(job.started_at)),
        ("finished", _t(job.finished_at)),
        ("attempts", f"{job.attempts} of {job.max_attempts}"),
        ("worker", job.worker_id or "-"),
        ("lease expires", _t(job.lease_expires_at)),
    ]
    width = max(len(k) for k, _ in fields) + 2
    lines = [f"{(k + ':').ljust(width)}{v}" for k, v in fields]
    reason = job.error.splitlines() or ["-"]
    lines.append(f"{'reason:'.ljust(width)}{reason[0]}")
    lines += [" " * width + line for line in reason[1:]]
    runs = list(job.runs.order_by("started_at", "pk"))
    lines.append(f"runs: {len(runs)}" if runs else "runs: none")
    for run in runs:
        snapshot = f" snapshot {run.snapshot_name}" if run.snapshot_name else ""
        code = f" rsync exit {run.rsync_exit_code}" if run.rsync_exit_code is not None else ""
        lines.append(f"  run {run.pk}: {run.outcome}, started {_t(run.started_at)}{snapshot}{code}")
        for line in run.message.splitlines():
            lines.append(f"    {line}")
    return lines


class Command(PobsyncCommand):
    help = "Show one job in full: state, times, attempts, the whole reason, and its runs."
    cli_name = "show-job"
    cli_group = GROUP_QUEUE

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("job", type=int, help="the job's id (see `pobsync jobs`)")

    def handle(self, *args: Any, **opts: Any) -> None:
        for line in job_lines(opts["job"]):
            self.stdout.write(line)
