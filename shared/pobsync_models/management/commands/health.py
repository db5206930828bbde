from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser
from django.utils import timezone

from pobsync_models.commandbase import GROUP_SERVICE, PobsyncCommand
from pobsync_models.models import WorkerProcess
from pobsync_models.registry import DEFAULT_MAX_AGE, age_text, seen_here, this_machine


class Command(PobsyncCommand):
    help = (
        "Exit 0 when the scheduler and a runner on this machine checked in recently "
        "(health checks; --kind for one of them)."
    )
    cli_name = "health"
    cli_group = GROUP_SERVICE

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--kind",
            choices=WorkerProcess.Kind.values,
            help="check only this kind of process (default: every kind, as one machine "
            "running pobsync with scripts/up.sh or systemd runs both)",
        )
        parser.add_argument(
            "--max-age",
            type=int,
            default=DEFAULT_MAX_AGE,
            help=f"seconds since its last check-in (default {DEFAULT_MAX_AGE})",
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        max_age = opts["max_age"]
        if max_age < 1:
            raise CommandError("--max-age must be at least 1")
        kinds = [opts["kind"]] if opts["kind"] else list(WorkerProcess.Kind.values)
        now = timezone.now()
        missing = []
        for kind in kinds:
            worker = seen_here(kind, max_age, now)
            if worker is None:
                missing.append(kind)
                continue
            ago = age_text((now - worker.last_seen_at).total_seconds())
            self.stdout.write(f"ok: {kind} {worker.worker_id} checked in {ago} ago")
        if missing:
            raise CommandError(
                f"unhealthy: no {' and no '.join(missing)} on {this_machine()} checked in "
                f"within {max_age} s"
            )
