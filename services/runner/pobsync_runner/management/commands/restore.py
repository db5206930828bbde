from __future__ import annotations

import getpass
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from django.core.management.base import CommandError, CommandParser
from django.utils import timezone

from pobsync_models.commandbase import GROUP_BACKUP, PobsyncCommand, get_host
from pobsync_models.models import BackupJob, RestoreRequest, WorkerProcess
from pobsync_models.queue import cancel
from pobsync_models.restores import RestoreAsk, RestoreError, request_restore
from pobsync_models.stopping import stop_on_signals
from pobsync_models.units import format_bytes
from pobsync_runner.verify import corrupt_warning

POLL_SECONDS = 0.5
RUNNER_HINT_AFTER = 10.0  # seconds queued before saying that no runner is up


def parse_at(raw: str) -> datetime:
    try:
        when = datetime.fromisoformat(raw)
    except ValueError:
        raise CommandError(
            f"--at {raw!r} is not an ISO time (2026-11-27T14:00, 2026-11-27T14:00+01:00)"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


class Command(PobsyncCommand):
    help = (
        "Restore paths from a snapshot to a directory (--to-dir) or back to a host "
        "(--to-host), through the job queue; waits and shows progress unless --no-wait."
    )
    cli_name = "restore"
    cli_group = GROUP_BACKUP

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("host", help="the host the data was backed up from")
        parser.add_argument("paths", nargs="+", help="paths as they were on the host: /etc")
        which = parser.add_mutually_exclusive_group()
        which.add_argument("--snapshot", help="snapshot name (default: the newest complete)")
        which.add_argument(
            "--at", help="the newest complete snapshot at or before this ISO time (UTC if no zone)"
        )
        where = parser.add_mutually_exclusive_group(required=True)
        where.add_argument("--to-dir", help="restore under this directory, keeping full paths")
        where.add_argument(
            "--to-host",
            nargs="?",
            const="",
            metavar="HOST",
            help="push back over ssh to the host it came from (or HOST) with its restore key",
        )
        parser.add_argument(
            "--target-path", default="", help="with --to-host: restore under this prefix"
        )
        parser.add_argument(
            "--overwrite", action="store_true", help="replace existing files that differ"
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="print what would change; write nothing"
        )
        parser.add_argument("--allow-partial", action="store_true", help="allow a partial snapshot")
        parser.add_argument(
            "--no-wait", action="store_true", help="queue the restore and return at once"
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        host = get_host(opts["host"])
        ask = RestoreAsk(
            paths=tuple(opts["paths"]),
            snapshot=opts["snapshot"],
            at=parse_at(opts["at"]) if opts["at"] else None,
            to_dir=opts["to_dir"],
            to_host=opts["to_host"],
            target_path=opts["target_path"],
            overwrite=opts["overwrite"],
            dry_run=opts["dry_run"],
            allow_partial=opts["allow_partial"],
        )
        try:
            job = request_restore(host, ask, f"cli:{getpass.getuser()}")
        except RestoreError as exc:
            raise CommandError(str(exc)) from None
        request = job.restore
        damaged = corrupt_warning(request.snapshot) if request.snapshot else ""
        if damaged:  # said before the copy starts, so the operator can pick another
            self.stderr.write(f"warning: {damaged}")
        self.stdout.write(
            f"restore job {job.pk} queued: {host.name}/{request.snapshot_name} "
            f"{' '.join(request.paths)} -> {request.target_label}"
            f"{' (dry run)' if request.dry_run else ''}"
        )
        if opts["no_wait"]:
            self.stdout.write(
                f"see `pobsync jobs --kind restore`; cancel with `pobsync cancel {job.pk}`"
            )
            return
        self.wait(job)

    def wait(self, job: BackupJob) -> None:
        tty = self.stdout.isatty()
        queued_since, hinted, cancelled = time.monotonic(), False, False
        with stop_on_signals() as stop:
            while True:
                state = BackupJob.objects.values_list("state", flat=True).get(pk=job.pk)
                if state not in (BackupJob.State.QUEUED, BackupJob.State.RUNNING):
                    break
                if stop.is_set() and not cancelled:
                    cancel(job.pk)
                    cancelled = True
                    self.stderr.write(f"cancelling restore job {job.pk}")
                if state == BackupJob.State.QUEUED and not hinted:
                    if time.monotonic() - queued_since > RUNNER_HINT_AFTER and not _runner_up():
                        self.stderr.write(
                            "waiting for a runner: start one with `pobsync runner --loop`"
                        )
                        hinted = True
                if tty and state == BackupJob.State.RUNNING:
                    self._progress(job)
                time.sleep(POLL_SECONDS)  # not stop.wait: once set, it would spin
        if tty:
            self.stdout.write("")
        self.report(job.pk)

    def _progress(self, job: BackupJob) -> None:
        p = RestoreRequest.objects.values(
            "progress_bytes", "progress_percent", "progress_files"
        ).get(pk=job.restore_id)
        if p["progress_bytes"] is None:
            return
        line = (
            f"\r{job.host.name}: {format_bytes(p['progress_bytes'])}  "
            f"{p['progress_percent'] or 0:3.0f}%  {p['progress_files'] or 0} files"
        )
        self.stdout.write(line.ljust(60), ending="")
        self.stdout.flush()

    def report(self, job_id: int) -> None:
        job = BackupJob.objects.select_related("restore", "host").get(pk=job_id)
        request = job.restore
        if request.changes:
            self.stdout.write(request.changes)
        if job.state == BackupJob.State.SUCCEEDED:
            figures = (
                f"{request.files_transferred or 0} of {request.files_total or 0} files, "
                f"{format_bytes(request.bytes_transferred or 0)}"
            )
            verb = "would copy" if request.dry_run else "copied"
            self.stdout.write(f"restore job {job.pk}: success, {verb} {figures}")
            if request.message:
                self.stderr.write(request.message)
            return
        raise CommandError(f"restore job {job.pk} {job.state}: {job.error or request.message}")


def _runner_up() -> bool:
    recent = timezone.now() - timedelta(minutes=2)
    return WorkerProcess.objects.filter(
        kind=WorkerProcess.Kind.RUNNER, last_seen_at__gte=recent
    ).exists()
