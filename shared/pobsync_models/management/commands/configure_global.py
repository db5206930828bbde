from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError, CommandParser

from pobsync_models.commandbase import PobsyncCommand, validation_error
from pobsync_models.global_verify import sync_global_verify
from pobsync_models.hostconfig import upsert_global
from pobsync_models.management.hook_args import add_hook_arguments, hook_values
from pobsync_models.management.retention_args import add_keep_arguments, keep_values
from pobsync_models.models import GlobalConfig
from pobsync_models.storages import MARKER_FILE, default_storage, read_marker, write_marker


class Command(PobsyncCommand):
    help = "Create or update the global configuration (backup root, SSH defaults, retention)."
    cli_name = "configure-global"

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--backup-root", help="absolute path snapshots are written under")
        parser.add_argument("--ssh-user", help="default SSH user (default root)")
        parser.add_argument("--ssh-port", type=int, help="default SSH port (default 22)")
        parser.add_argument("--ssh-key", help="default private key (absolute path)")
        parser.add_argument("--known-hosts", help="pobsync-managed known_hosts (absolute path)")
        parser.add_argument("--connect-timeout", type=int, help="ssh ConnectTimeout in seconds")
        parser.add_argument("--rsync-timeout", type=int, help="rsync I/O timeout in seconds")
        parser.add_argument(
            "--max-running-jobs", type=int, help="jobs running at once, 0 for no limit"
        )
        parser.add_argument(
            "--verify-outdated-days",
            type=int,
            metavar="N",
            help="verify jobs read in full every snapshot not fully read for N days (30)",
        )
        parser.add_argument(
            "--verify-sample-percent",
            type=float,
            metavar="P",
            help="verify jobs read this share of the other snapshots' files (5)",
        )
        parser.add_argument(
            "--verify-cron",
            metavar="CRON",
            help='verify jobs of every host without its own verify schedule, e.g. "30 4 * * 0"'
            ' ("" removes the global schedule)',
        )
        parser.add_argument(
            "--verify-timezone", metavar="TZ", help="time zone of --verify-cron (default UTC)"
        )
        add_keep_arguments(parser, inherit=False)
        add_hook_arguments(parser, host=False)

    def handle(self, *args: Any, **opts: Any) -> None:
        values: dict[str, Any] = {}
        mapping = {
            "backup_root": "backup_root",
            "ssh_user": "ssh_user",
            "ssh_port": "ssh_port",
            "ssh_key": "ssh_key_path",
            "known_hosts": "known_hosts_path",
            "connect_timeout": "connect_timeout",
            "rsync_timeout": "rsync_timeout",
            "max_running_jobs": "max_running_jobs",
            "verify_outdated_days": "verify_outdated_days",
            "verify_sample_percent": "verify_sample_percent",
            "verify_timezone": "verify_timezone",
        }
        for option, field in mapping.items():
            if opts[option] is not None:
                values[field] = opts[option]
        if opts["verify_cron"] is not None:
            values["verify_cron"] = " ".join(opts["verify_cron"].split())
        values.update(keep_values(opts))
        values.update(hook_values(opts, host=False))
        if GlobalConfig.load() is None and "backup_root" not in values:
            raise CommandError("the first configure-global needs --backup-root PATH")
        if "backup_root" in values:
            values["backup_root"] = values["backup_root"].rstrip("/") or "/"
        try:
            config, created, changes = upsert_global(values)
        except ValidationError as exc:
            raise validation_error(exc) from None
        root = Path(config.backup_root)
        if not root.is_dir():
            try:
                root.mkdir(mode=0o700, parents=True, exist_ok=True)
            except OSError as exc:
                raise CommandError(
                    f"saved, but cannot create backup root {root}: {exc.strerror}"
                ) from None
            self.stdout.write(f"created backup root {root}")
        self.mark_default(root)
        synced = sync_global_verify()
        verb = "created" if created else "updated"
        if not changes and not created:
            self.stdout.write("global configuration unchanged")
            return
        self.stdout.write(f"global configuration {verb}:")
        for change in changes:
            self.stdout.write(f"  {change}")
        if synced.changed:
            self.stdout.write(f"  {synced.summary()}")

    def mark_default(self, root: Path) -> None:
        """The backup root is the default storage: give it its marker file (the mount
        guard's proof that this is the right disk) unless it has one already."""
        storage = default_storage()
        marker = read_marker(root)
        if storage is None or (marker and marker.get("marker_id") == storage.marker_id):
            return
        if marker is not None:
            raise CommandError(
                f"saved, but {root / MARKER_FILE} marks storage {marker.get('storage')!r}: "
                "backups stop at the mount guard until the backup root is the right disk "
                "(`pobsync storage mark default --take-over` if it is)"
            )
        try:
            write_marker(storage)
        except OSError as exc:
            raise CommandError(
                f"saved, but cannot write {root / MARKER_FILE}: {exc.strerror}"
            ) from None
        self.stdout.write(f"marked {root} as storage {storage.name} ({MARKER_FILE})")
