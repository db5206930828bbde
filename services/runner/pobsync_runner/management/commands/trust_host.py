from __future__ import annotations

import subprocess
import sys
from typing import Any

from django.core.management.base import CommandError, CommandParser

from pobsync_models.commandbase import (
    GROUP_BACKUP,
    PobsyncCommand,
    get_host,
    require_global_config,
)
from pobsync_models.specs import host_spec
from pobsync_runner.ssh import host_pattern, known_lines, record_host_keys, scan_host_keys


class Command(PobsyncCommand):
    help = "Record a host's SSH host key in pobsync's known_hosts after showing its fingerprint."
    cli_name = "trust-host"
    cli_group = GROUP_BACKUP

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("host")
        parser.add_argument(
            "--fingerprint",
            metavar="SHA256:...",
            help="accept only if the host offers a key with this fingerprint (no prompt)",
        )
        parser.add_argument(
            "--yes", action="store_true", help="accept the offered keys without asking"
        )
        parser.add_argument(
            "--replace",
            action="store_true",
            help="replace keys already recorded for the host (after a legitimate key change)",
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        config = require_global_config()
        host = get_host(opts["host"])
        ssh = host_spec(host, config).ssh
        pattern = host_pattern(ssh.address, ssh.port)
        try:
            keys = scan_host_keys(ssh.address, ssh.port, ssh.connect_timeout)
        except (OSError, subprocess.SubprocessError) as exc:  # unreachable, no ssh-keyscan
            raise CommandError(f"cannot read the host key of {host.name}: {exc}") from None
        self.stdout.write(f"{pattern} offers:")
        for key in keys:
            self.stdout.write(f"  {key.key_type:<22} {key.fingerprint}")
        # Checked before anything else: a fingerprint the host does not offer is a
        # mistake or an attack whatever known_hosts already says, never "already trusted".
        wanted = opts["fingerprint"]
        if wanted and wanted not in {k.fingerprint for k in keys}:
            raise CommandError(
                f"fingerprint {wanted} matches none of the host's keys (those {pattern} "
                "offers, listed above): check it; nothing changed"
            )
        existing = known_lines(ssh.known_hosts_path, pattern)
        offered = [k.line for k in keys]
        if existing and sorted(existing) == sorted(offered):
            self.stdout.write(f"already trusted in {ssh.known_hosts_path}")
            return
        if existing and not opts["replace"]:
            raise CommandError(
                f"{pattern} already has different keys in {ssh.known_hosts_path}: the host key "
                "changed or someone is in the middle; check it, then use --replace"
            )
        if not wanted and not opts["yes"]:
            if not sys.stdin.isatty():
                raise CommandError(
                    "compare the fingerprints above with the host's own "
                    "(ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub on it), then run again "
                    "with --fingerprint SHA256:... or --yes"
                )
            answer = input(f"trust these keys for {host.name}? [y/N] ").strip().lower()
            if answer not in {"y", "yes"}:
                raise CommandError("not trusted; nothing changed")
        record_host_keys(ssh.known_hosts_path, pattern, offered)
        self.stdout.write(f"trusted {pattern} in {ssh.known_hosts_path}")
