from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser

from pobsync_models.checks import run_pobsync_checks
from pobsync_models.commandbase import GROUP_QUEUE, PobsyncCommand
from pobsync_runner.worker import Runner


class Command(PobsyncCommand):
    help = "Run a runner: claim queued backup jobs and run them, one at a time."
    cli_name = "runner"
    cli_group = GROUP_QUEUE

    def add_arguments(self, parser: CommandParser) -> None:
        mode = parser.add_mutually_exclusive_group(required=True)
        mode.add_argument("--loop", action="store_true", help="run until SIGTERM/SIGINT")
        mode.add_argument("--once", action="store_true", help="run at most one job, then exit")
        parser.add_argument(
            "--interval",
            type=float,
            default=5.0,
            help="seconds to wait when the queue is empty (default 5)",
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        if opts["interval"] <= 0:
            raise CommandError("--interval must be positive")
        for problem in run_pobsync_checks():
            # Keep running: jobs then fail with the same one-line reason, which the
            # dashboard shows; a crash loop would show nothing.
            self.stderr.write(f"warning: {problem.msg} ({problem.hint})")
        runner = Runner(interval=opts["interval"], say=self._say)
        self._say(f"runner {runner.worker_id} started")
        runner.run(once=opts["once"])
        self._say(f"runner {runner.worker_id} stopped")

    def _say(self, text: str) -> None:
        self.stdout.write(text)
        self.stdout.flush()
