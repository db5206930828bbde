from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser

from pobsync_models.checks import run_pobsync_checks
from pobsync_models.daemon import DaemonCommand
from pobsync_runner.serving import Service, UnknownStorageError
from pobsync_runner.worker import Runner


class Command(DaemonCommand):
    help = "Run a runner: claim queued backup jobs and run them, one at a time."
    cli_name = "runner"
    default_interval = 5.0
    interval_help = "seconds to wait when the queue is empty"
    once_help = "run at most one job, then exit"

    def add_daemon_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--storage",
            action="append",
            metavar="NAME",
            help="serve only this storage (repeatable; default: every storage whose "
            "marker file this runner sees, checked again every minute)",
        )

    def make_daemon(self, opts: dict[str, Any]) -> Runner:
        try:
            Service(opts["storage"]).check_names()
        except UnknownStorageError as exc:
            raise CommandError(str(exc)) from None
        for problem in run_pobsync_checks():
            # Keep running: jobs then fail with the same one-line reason, which the
            # dashboard shows; a crash loop would show nothing.
            self.stderr.write(f"warning: {problem.msg} ({problem.hint})")
        return Runner(interval=opts["interval"], storages=opts["storage"], say=self.say)
