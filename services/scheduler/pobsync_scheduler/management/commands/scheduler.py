from __future__ import annotations

from datetime import datetime
from typing import Any

from django.core.management.base import CommandError, CommandParser

from pobsync_models.commandbase import GROUP_QUEUE, PobsyncCommand
from pobsync_scheduler.daemon import Scheduler


def _aware(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise CommandError(f"--now {text!r}: use ISO 8601 with an offset") from None
    if value.tzinfo is None:
        raise CommandError(f"--now {text!r}: add an offset, e.g. {text}+00:00")
    return value


class Command(PobsyncCommand):
    help = "Run the scheduler: enqueue due schedule slots as jobs and reap expired leases."
    cli_name = "scheduler"
    cli_group = GROUP_QUEUE

    def add_arguments(self, parser: CommandParser) -> None:
        mode = parser.add_mutually_exclusive_group(required=True)
        mode.add_argument("--loop", action="store_true", help="run until SIGTERM/SIGINT")
        mode.add_argument("--once", action="store_true", help="one pass, then exit")
        parser.add_argument(
            "--interval", type=float, default=60.0, help="seconds between passes (default 60)"
        )
        parser.add_argument(
            "--now",
            help="evaluate schedules as if it were this time (ISO 8601, with --once; tests)",
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        if opts["interval"] <= 0:
            raise CommandError("--interval must be positive")
        now = _aware(opts["now"]) if opts["now"] else None
        if now and not opts["once"]:
            raise CommandError("--now only works with --once")
        scheduler = Scheduler(interval=opts["interval"], now=now, say=self._say)
        self._say(f"scheduler {scheduler.worker_id} started")
        scheduler.run(once=opts["once"])
        self._say(f"scheduler {scheduler.worker_id} stopped")

    def _say(self, text: str) -> None:
        self.stdout.write(text)
        self.stdout.flush()
