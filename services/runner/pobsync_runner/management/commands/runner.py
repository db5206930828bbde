from __future__ import annotations

from typing import Any

from pobsync_models.checks import run_pobsync_checks
from pobsync_models.daemon import DaemonCommand
from pobsync_runner.worker import Runner


class Command(DaemonCommand):
    help = "Run a runner: claim queued backup jobs and run them, one at a time."
    cli_name = "runner"
    default_interval = 5.0
    interval_help = "seconds to wait when the queue is empty"
    once_help = "run at most one job, then exit"

    def make_daemon(self, opts: dict[str, Any]) -> Runner:
        for problem in run_pobsync_checks():
            # Keep running: jobs then fail with the same one-line reason, which the
            # dashboard shows; a crash loop would show nothing.
            self.stderr.write(f"warning: {problem.msg} ({problem.hint})")
        return Runner(interval=opts["interval"], say=self.say)
