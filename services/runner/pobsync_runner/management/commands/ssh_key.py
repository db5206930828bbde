from __future__ import annotations

import os
import re
import socket
import subprocess
from pathlib import Path
from typing import Any

from django.core.management.base import CommandError, CommandParser

from pobsync_models.commandbase import GROUP_BACKUP, PobsyncCommand, get_host
from pobsync_models.models import GlobalConfig
from pobsync_models.restores import default_restore_key_path
from pobsync_models.specs import default_key_path

RESTRICTION = 'restrict,command="rrsync -ro /"'
# Write-only (the restore key cannot read the host), no deletion, confined to the root.
RESTORE_RESTRICTION = 'restrict,command="rrsync -wo -no-del {root}"'
_SAFE_ROOT_RE = re.compile(r"^/[A-Za-z0-9._/+@-]*$")


def ensure_key(key: Path, comment: str) -> tuple[str, bool]:
    """The public key line of `key`, created (ed25519, no passphrase) if missing."""
    pub = key.with_name(key.name + ".pub")
    if key.exists():
        if not pub.exists():
            raise CommandError(f"{key} exists but {pub} is missing: recreate it with ssh-keygen -y")
        return pub.read_text(encoding="utf-8").strip(), False
    key.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(key.parent, 0o700)
    try:
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(key)],
            check=True,
            capture_output=True,
            text=True,
        )
    except (OSError, subprocess.CalledProcessError) as exc:
        detail = getattr(exc, "stderr", "") or str(exc)
        raise CommandError(f"cannot create {key}: {detail.strip()}") from None
    return pub.read_text(encoding="utf-8").strip(), True


class Command(PobsyncCommand):
    help = (
        "Create the backup server's SSH key if missing and print the remote "
        "authorized_keys line; with --restore, the separate restore key's line."
    )
    cli_name = "ssh-key"
    cli_group = GROUP_BACKUP

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--command",
            metavar="'CMD ARG...'",
            help="create (or reuse) the key for this one remote command and print its "
            "restricted line (see docs/hooks.md)",
        )
        parser.add_argument(
            "--restore",
            action="store_true",
            help="the restore key (write access confined to --root), not the backup key",
        )
        parser.add_argument(
            "--root", help="with --restore: the directory restores may write under (/ = all)"
        )
        parser.add_argument(
            "--host", help="with --restore: record --root as this host's restore root"
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        if opts.get("command") is not None:
            if opts["restore"]:
                raise CommandError("--command and --restore make different keys: give one")
            from pobsync_runner.remotekeys import print_command_key

            print_command_key(self, opts["command"])
            return
        if opts["restore"]:
            self.restore_key(opts["root"], opts["host"])
            return
        if opts["root"] or opts["host"]:
            raise CommandError("--root and --host go with --restore")
        config = GlobalConfig.load()
        key = Path(config.ssh_key_path) if config and config.ssh_key_path else default_key_path()
        line, created = ensure_key(key, f"pobsync@{socket.gethostname()}")
        if created:
            self.stderr.write(f"created {key}")
        self.stderr.write(
            "add this line to ~/.ssh/authorized_keys of the backup user on each remote "
            "(read-only rsync only; see docs/security.md):"
        )
        self.stdout.write(f"{RESTRICTION} {line}")

    def restore_key(self, root: str | None, host_name: str | None) -> None:
        if not root:
            raise CommandError(
                "--restore needs --root DIR: the directory on the host restores may write "
                "under (give / only if restores may write anywhere)"
            )
        root = os.path.normpath(root)
        if not _SAFE_ROOT_RE.match(root) or ".." in root.split("/"):
            raise CommandError(
                f"--root {root!r} must be an absolute path of letters, digits and ._/+@-"
            )
        host = get_host(host_name) if host_name else None
        key = default_restore_key_path()
        if host is not None and host.restore_key_path:
            key = Path(host.restore_key_path)
        line, created = ensure_key(key, f"pobsync-restore@{socket.gethostname()}")
        if created:
            self.stderr.write(f"created {key}")
        if host is not None:
            host.restore_root = root
            host.save(update_fields=["restore_root", "updated_at"])
            self.stderr.write(f"host {host.name}: restores may write under {root}")
        self.stderr.write(
            "add this line to ~/.ssh/authorized_keys of the restore user on the host "
            "(write-only rsync under the root, never deletes; see docs/restore.md):"
        )
        self.stdout.write(f"{RESTORE_RESTRICTION.format(root=root)} {line}")
