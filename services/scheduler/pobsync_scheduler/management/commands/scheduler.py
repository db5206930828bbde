from __future__ import annotations

from datetime import datetime
from typing import Any

from django.core.management.base import CommandError, CommandParser

from pobsync_models.daemon import DaemonCommand
from pobsync_scheduler.daemon import Scheduler


def _aware(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise CommandError(f"--now {text!r}: use ISO 8601 with an offset") from None
    if value.tzinfo is None:
        raise CommandError(f"--now {text!r}: add an offset, e.g. {text}+00:00")
    return value


class Command(DaemonCommand):
    help = "Run the scheduler: enqueue due schedule slots as jobs and reap expired leases."
    cli_name = "scheduler"
    default_interval = 60.0
    interval_help = "longest wait between passes; a pass also starts at every minute boundary"

    def add_daemon_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--now",
            help="evaluate schedules as if it were this time (ISO 8601, with --once; tests)",
        )

    def make_daemon(self, opts: dict[str, Any]) -> Scheduler:
        now = _aware(opts["now"]) if opts["now"] else None
        if now and not opts["once"]:
            raise CommandError("--now only works with --once")
        return Scheduler(interval=opts["interval"], now=now, send_inline=opts["once"], say=self.say)
