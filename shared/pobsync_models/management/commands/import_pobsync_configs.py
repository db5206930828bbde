from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import CommandError, CommandParser

from pobsync_models.commandbase import GROUP_MIGRATION, PobsyncCommand
from pobsync_models.legacy_yaml.plan import ImportRefusedError, import_config
from pobsync_models.legacy_yaml.reader import config_dir, read_config_files
from pobsync_models.management.prefix_args import add_prefix_argument


class Command(PobsyncCommand):
    help = "Import legacy YAML config files into SQL; every file is checked before any write."
    cli_name = "import-configs"
    cli_group = GROUP_MIGRATION

    def add_arguments(self, parser: CommandParser) -> None:
        add_prefix_argument(parser, "reads")
        parser.add_argument(
            "--dry-run", action="store_true", help="show what would change; write nothing"
        )
        parser.add_argument(
            "--prune-missing",
            action="store_true",
            help="delete hosts that have no file (with their schedules, jobs, runs and "
            "snapshot records; snapshot directories stay on disk)",
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        prefix = Path(opts["prefix"])
        self.stdout.write(f"reading {config_dir(prefix)}")
        files = read_config_files(prefix)
        for path in files.ignored:
            self.stdout.write(f"ignored {path} (not a <host>.yaml file)")
        try:
            plan = import_config(
                files, prune_missing=opts["prune_missing"], dry_run=opts["dry_run"]
            )
        except ImportRefusedError as exc:
            for problem in exc.problems:
                self.stderr.write(str(problem))
            count = len(exc.problems)
            in_files = len({p.file for p in exc.problems})
            raise CommandError(
                f"{count} problem{'s' if count != 1 else ''} in {in_files} "
                f"file{'s' if in_files != 1 else ''}; nothing was imported: fix "
                f"{'them' if count != 1 else 'it'} and run again"
            ) from None
        for line in plan.report(dry_run=opts["dry_run"]):
            self.stdout.write(line)
        if opts["dry_run"]:
            self.stdout.write("dry run: nothing was written")
