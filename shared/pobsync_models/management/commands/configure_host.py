from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError, CommandParser

from pobsync_models.commandbase import PobsyncCommand, require_global_config, validation_error
from pobsync_models.hostconfig import upsert_host
from pobsync_models.management.hook_args import add_hook_arguments, hook_values
from pobsync_models.management.retention_args import add_keep_arguments, keep_values
from pobsync_models.models import Host, Storage
from pobsync_models.validators import validate_host_name


class Command(PobsyncCommand):
    help = "Create or update a host: address, SSH, sources, excludes, retention; prints changes."
    cli_name = "configure-host"

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("host", help="host name (letters, digits, '.', '_', '-')")
        parser.add_argument("--address", help="host name or IP address to connect to")
        parser.add_argument("--user", help="SSH user (default: the global default)")
        parser.add_argument("--port", type=int, help="SSH port (default: the global default)")
        parser.add_argument("--key", help="private key for this host (absolute path)")
        parser.add_argument(
            "--source",
            action="append",
            metavar="PATH",
            help="absolute path to back up; repeat for several (replaces the list)",
        )
        parser.add_argument(
            "--exclude",
            action="append",
            metavar="PATTERN",
            help="rsync exclude pattern; repeat for several (replaces the list)",
        )
        parser.add_argument("--clear-excludes", action="store_true", help="remove all excludes")
        parser.add_argument(
            "--rsync-option",
            action="append",
            metavar="OPT",
            help="extra rsync option from the allow-list, e.g. --rsync-option=--bwlimit=5M "
            "(replaces the list)",
        )
        parser.add_argument(
            "--clear-rsync-options", action="store_true", help="remove all extra rsync options"
        )
        parser.add_argument(
            "--warning-exit-code",
            action="append",
            type=int,
            metavar="CODE",
            help="rsync exit code to treat as a warning besides 24 (replaces the list)",
        )
        parser.add_argument(
            "--overdue-after",
            type=int,
            metavar="HOURS",
            help="overdue without a success for this long; 0 restores the default "
            "(twice the schedule's interval)",
        )
        parser.add_argument(
            "--ping-url",
            metavar="URL",
            help="healthchecks.io-style ping URL (start, success, /fail); '' removes it",
        )
        parser.add_argument(
            "--storage",
            metavar="NAME",
            help="the storage its new snapshots go to (existing ones stay: docs/storage.md)",
        )
        add_keep_arguments(parser, inherit=True)
        add_hook_arguments(parser, host=True)
        state = parser.add_mutually_exclusive_group()
        state.add_argument("--enable", dest="enabled", action="store_true", default=None)
        state.add_argument("--disable", dest="enabled", action="store_false")

    def handle(self, *args: Any, **opts: Any) -> None:
        name = opts["host"]
        try:
            validate_host_name(name)
        except ValidationError as exc:
            raise validation_error(exc) from None
        require_global_config()
        values: dict[str, Any] = {}
        simple = {
            "address": "address",
            "user": "ssh_user",
            "port": "ssh_port",
            "key": "ssh_key_path",
        }
        for option, field in simple.items():
            if opts[option] is not None:
                values[field] = opts[option]
        if opts["source"] is not None:
            values["sources"] = opts["source"]
        if opts["clear_excludes"]:
            values["excludes"] = []
        if opts["exclude"] is not None:
            values["excludes"] = opts["exclude"]
        if opts["clear_rsync_options"]:
            values["rsync_options"] = []
        if opts["rsync_option"] is not None:
            values["rsync_options"] = opts["rsync_option"]
        if opts["warning_exit_code"] is not None:
            values["warning_exit_codes"] = opts["warning_exit_code"]
        if opts["enabled"] is not None:
            values["enabled"] = opts["enabled"]
        if opts["overdue_after"] is not None:
            if opts["overdue_after"] < 0:
                raise validation_error(ValidationError("--overdue-after must be 0 or more hours"))
            values["overdue_after_hours"] = opts["overdue_after"] or None
        if opts["ping_url"] is not None:
            values["ping_url"] = opts["ping_url"]
        values.update(keep_values(opts))
        try:
            values.update(hook_values(opts, host=True))
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        if opts["storage"] is not None:
            storage = Storage.objects.filter(name=opts["storage"]).first()
            if storage is None:
                raise CommandError(
                    f"unknown storage {opts['storage']!r} (see `pobsync storage list`)"
                )
            values["storage"] = storage
        if "address" not in values and not Host.objects.filter(name=name).exists():
            raise validation_error(ValidationError(f"new host {name!r} needs --address"))
        try:
            host, created, changes = upsert_host(name, values)
        except ValidationError as exc:
            raise validation_error(exc, prefix=f"host {name}: ") from None
        if not changes:
            self.stdout.write(f"host {host.name} unchanged")
            return
        self.stdout.write(f"host {host.name} {'created' if created else 'updated'}:")
        for change in changes:
            if change.field != "name":
                self.stdout.write(f"  {change}")
        if not created and any(c.field == "storage" for c in changes):
            self.stdout.write(
                "  existing snapshots stay where they are; new ones go to the new storage "
                "(to move them too, see docs/storage.md)"
            )
