from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path
from typing import Any

from django.core.management.base import CommandError, CommandParser

from pobsync_models.commandbase import GROUP_BACKUP, PobsyncCommand
from pobsync_models.models import GlobalConfig
from pobsync_models.specs import default_key_path

RESTRICTION = 'restrict,command="rrsync -ro /"'


class Command(PobsyncCommand):
    help = "Create the backup server's SSH key if missing; print the remote authorized_keys line."
    cli_name = "ssh-key"
    cli_group = GROUP_BACKUP

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--command",
            metavar="'CMD ARG...'",
            help="create (or reuse) the key for this one remote command and print its "
            "restricted line (see docs/hooks.md)",
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        if opts.get("command") is not None:
            from pobsync_runner.remotekeys import print_command_key

            print_command_key(self, opts["command"])
            return
        config = GlobalConfig.load()
        key = Path(config.ssh_key_path) if config and config.ssh_key_path else default_key_path()
        pub = key.with_name(key.name + ".pub")
        if not key.exists():
            key.parent.mkdir(parents=True, exist_ok=True)
            os.chmod(key.parent, 0o700)
            try:
                subprocess.run(
                    ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C",
                     f"pobsync@{socket.gethostname()}", "-f", str(key)],
                    check=True,
                    capture_output=True,
                    text=True,
                )  # fmt: skip
            except (OSError, subprocess.CalledProcessError) as exc:
                detail = getattr(exc, "stderr", "") or str(exc)
                raise CommandError(f"cannot create {key}: {detail.strip()}") from None
            self.stderr.write(f"created {key}")
        elif not pub.exists():
            raise CommandError(f"{key} exists but {pub} is missing: recreate it with ssh-keygen -y")
        line = pub.read_text(encoding="utf-8").strip()
        self.stderr.write(
            "add this line to ~/.ssh/authorized_keys of the backup user on each remote "
            "(read-only rsync only; see docs/security.md):"
        )
        self.stdout.write(f"{RESTRICTION} {line}")
