from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError

from pobsync_models.checks import run_pobsync_checks
from pobsync_models.commandbase import GROUP_SERVICE, PobsyncCommand


class Command(PobsyncCommand):
    help = "Check that this server can run backups (backup root, rsync, ssh, host keys)."
    cli_name = "check"
    cli_group = GROUP_SERVICE

    def handle(self, *args: Any, **opts: Any) -> None:
        problems = run_pobsync_checks()
        for problem in problems:
            hint = f" ({problem.hint})" if problem.hint else ""
            self.stderr.write(f"{problem.id}: {problem.msg}{hint}")
        if problems:
            raise CommandError(f"{len(problems)} problem(s) found", returncode=1)
        self.stdout.write("pobsync: all checks passed")
