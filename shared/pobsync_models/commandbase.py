"""The base every pobsync management command builds on, and small shared helpers.

A command becomes a `pobsync` subcommand by setting `cli_name` (and `cli_group` for
the section of `pobsync --help`); pobsync_models.cli discovers them, so adding a
command never means editing a registry.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from django.core.exceptions import ValidationError
from django.core.management.base import (
    BaseCommand,
    CommandError,
    CommandParser,
    SystemCheckError,
)

from pobsync_models.validators import first_error

GROUP_CONFIG = "Configuration"
GROUP_BACKUP = "Backups and snapshots"
GROUP_QUEUE = "Scheduling, queue and workers"
GROUP_SERVICE = "Service"
GROUP_MIGRATION = "Migration helpers (legacy YAML)"
CLI_GROUPS = (GROUP_CONFIG, GROUP_BACKUP, GROUP_QUEUE, GROUP_SERVICE, GROUP_MIGRATION)


class OneLineParser(CommandParser):
    """Usage mistakes print one line (what is wrong, where to look) and exit 2."""

    def error(self, message: str) -> NoReturn:
        if getattr(self, "called_from_command_line", False):
            sys.stderr.write(f"{self.prog}: {message} (see {self.prog} --help)\n")
            sys.exit(2)
        raise CommandError(f"Error: {message}")


class PobsyncCommand(BaseCommand):
    cli_name: str | None = None
    cli_group: str = GROUP_CONFIG
    # pobsync's own readiness checks are run explicitly (`pobsync check`, runner and
    # scheduler start-up); an unconfigured server must still migrate and serve pages.
    requires_system_checks: list[str] = []

    def execute(self, *args: Any, **options: Any) -> Any:
        """From the command line a CommandError prints as `pobsync: <message>`, one line,
        instead of Django's `CommandError: <message>` (which names a Python class)."""
        try:
            return super().execute(*args, **options)
        except CommandError as exc:
            from_cli = getattr(self, "_called_from_command_line", False)
            if not from_cli or options.get("traceback") or isinstance(exc, SystemCheckError):
                raise
            self.stderr.write(f"pobsync: {exc}")
            sys.exit(exc.returncode)

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        # Django builds a CommandParser with no hook for the class; OneLineParser only
        # overrides error(), so re-classing the instance is safe.
        parser.__class__ = OneLineParser
        return parser


def validation_error(error: ValidationError, prefix: str = "") -> CommandError:
    return CommandError(f"{prefix}{first_error(error)}")


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain left-aligned text table; empty cells print as '-'."""
    cells = [[("-" if v is None or v == "" else str(v)) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, value in enumerate(row):
            widths[i] = max(widths[i], len(value))
    lines = ["  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    for row in cells:
        lines.append("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
    return "\n".join(lines)


def get_host(name: str):  # -> Host
    from pobsync_models.models import Host

    host = Host.objects.filter(name=name).first()
    if host is None:
        raise CommandError(f"unknown host {name!r} (see `pobsync hosts`)")
    return host


def require_global_config():  # -> GlobalConfig
    from pobsync_models.models import GlobalConfig

    config = GlobalConfig.load()
    if config is None:
        raise CommandError(
            "no global configuration yet: run `pobsync configure-global --backup-root PATH`"
        )
    return config
