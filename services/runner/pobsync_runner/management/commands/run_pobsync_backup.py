from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser

from pobsync_models.commandbase import GROUP_BACKUP, PobsyncCommand, get_host
from pobsync_models.models import BackupRun
from pobsync_models.stopping import stop_on_signals
from pobsync_models.units import format_bytes
from pobsync_runner.backup import BackupError, StorageShortError, run_backup
from pobsync_runner.rsync_output import Progress


def _size(n: int | None) -> str:
    return "?" if n is None else format_bytes(n)


class Command(PobsyncCommand):
    help = "Back up one host now into a new snapshot (also: manage.py run_pobsync_backup)."
    cli_name = "backup"
    cli_group = GROUP_BACKUP

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("host")
        parser.add_argument(
            "--prune", action="store_true", help="apply retention after a committed snapshot"
        )
        parser.add_argument(
            "--wait",
            action="store_true",
            help="if another backup of the host is running, wait for it instead of failing",
        )

        parser.add_argument(
            "--force",
            action="store_true",
            help="back up even when the storage is below its free-space minimums",
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        host = get_host(opts["host"])
        tty = self.stdout.isatty()

        def show(p: Progress) -> None:
            line = f"\r{host.name}: {_size(p.bytes)}  {p.percent:3.0f}%  {p.files} files"
            self.stdout.write(line.ljust(60), ending="")
            self.stdout.flush()

        try:
            with stop_on_signals() as stop:
                run = run_backup(
                    host,
                    prune=opts["prune"],
                    wait=opts["wait"],
                    stop=stop,
                    progress=show if tty else None,
                    force=opts["force"],
                )
        except StorageShortError as exc:
            raise CommandError(f"{exc}; run with --force to back up anyway") from None
        except BackupError as exc:
            raise CommandError(str(exc)) from None
        if tty:
            self.stdout.write("")
        self.report(run)

    def report(self, run: BackupRun) -> None:
        outcome = run.outcome
        figures = (
            f"{run.files_total if run.files_total is not None else '?'} files, "
            f"{_size(run.bytes_total)}; transferred {run.files_transferred or 0} files, "
            f"{_size(run.bytes_transferred)}"
        )
        if outcome in (BackupRun.Outcome.SUCCESS, BackupRun.Outcome.WARNING):
            base = f" (base {run.base_snapshot_name})" if run.base_snapshot_name else " (full)"
            self.stdout.write(
                f"backup {run.host.name}: {outcome}, snapshot {run.snapshot_name}{base}: {figures}"
            )
            if run.message:
                self.stderr.write(f"{outcome}: {run.message}")
            return
        from pobsync_runner.worker import outcome_text  # the runner's wording, not at start-up

        raise CommandError(f"backup {run.host.name} {outcome_text(outcome, run.message)}")
