from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import CommandError, CommandParser

from pobsync_models.commandbase import GROUP_MIGRATION, PobsyncCommand, require_global_config
from pobsync_models.legacy_yaml.writer import export_config
from pobsync_models.management.prefix_args import add_prefix_argument


class Command(PobsyncCommand):
    help = "Export the SQL configuration as legacy YAML files (migration and inspection only)."
    cli_name = "export-configs"
    cli_group = GROUP_MIGRATION

    def add_arguments(self, parser: CommandParser) -> None:
        add_prefix_argument(parser, "writes")
        parser.add_argument(
            "--force",
            action="store_true",
            help="overwrite files that were edited since they were exported, or that "
            "pobsync did not write",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="show which files would change; write nothing"
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        config = require_global_config()
        prefix = Path(opts["prefix"])
        try:
            result = export_config(prefix, config, force=opts["force"], dry_run=opts["dry_run"])
        except OSError as exc:
            where = f" {exc.filename}" if exc.filename else ""
            raise CommandError(f"cannot write{where}: {exc.strerror}") from None
        if result.refused and not opts["force"]:
            for path in result.refused:
                self.stderr.write(
                    f"{path}: changed since pobsync exported it (or not written by pobsync)"
                )
            count = len(result.refused)
            raise CommandError(
                f"{count} file{'s' if count != 1 else ''} would be overwritten; nothing was "
                "written: move them away, import them first, or use --force"
            )
        would = "would be " if opts["dry_run"] else ""
        for path in result.created:
            self.stdout.write(f"{path}: {would}created")
        for path in result.updated:
            self.stdout.write(f"{path}: {would}updated")
        if result.unchanged:
            count = len(result.unchanged)
            self.stdout.write(f"{count} file{'s' if count != 1 else ''} already up to date")
        for path in result.not_exported:
            self.stdout.write(
                f"note: {path} has no host in the database and was left alone; "
                "import-configs would create that host again"
            )
        if opts["dry_run"]:
            self.stdout.write("dry run: nothing was written")
