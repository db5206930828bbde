"""One SSH key pair per remote command, and the authorized_keys line that pins it.

Invariant: the backup key stays read-only (`rrsync -ro`); every command pobsync runs on a
remote (remote hooks, database dumps) uses a key of its own whose authorized_keys line is
`restrict,command="<that command>"`. `restrict` turns off port, agent and X11
forwarding, the pty and ~/.ssh/rc; `command=` makes sshd run exactly that command
whatever the client asks for. So a stolen command key can run that one command and
nothing else.

Keys live in <POBSYNC_SSH_DIR>/commands/cmd-<hash>, the hash taken over the command's
canonical shell form, so the runner finds a command's key from the host configuration
alone and `pobsync ssh-key --command` is idempotent.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shlex
import socket
import subprocess
from pathlib import Path
from typing import Any

from pobsync_models.specs import HostSpec
from pobsync_runner.ssh import ssh_argv

RESTRICT = "restrict"


def command_string(argv: tuple[str, ...] | list[str]) -> str:
    """The command as the remote's shell will run it (sshd runs `$SHELL -c` on it)."""
    return shlex.join(argv)


def command_key_path(keys_dir: Path, argv: tuple[str, ...] | list[str]) -> Path:
    digest = hashlib.sha256(command_string(argv).encode("utf-8")).hexdigest()[:16]
    return keys_dir / f"cmd-{digest}"


def authorized_line(argv: tuple[str, ...] | list[str], public_key: str) -> str:
    """`restrict,command="..." <public key>`; inside the quotes only `"` needs a backslash."""
    forced = command_string(argv).replace('"', '\\"')
    return f'{RESTRICT},command="{forced}" {public_key.strip()}'


def ensure_command_key(keys_dir: Path, argv: tuple[str, ...] | list[str]) -> tuple[Path, bool]:
    """The key for `argv`, created (ed25519, no passphrase) if missing: (path, created).

    Raises OSError with one line when ssh-keygen fails.
    """
    key = command_key_path(keys_dir, argv)
    pub = key.with_name(key.name + ".pub")
    if key.exists() and pub.exists():
        return key, False
    keys_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(keys_dir, 0o700)
    for stale in (key, pub):
        stale.unlink(missing_ok=True)
    comment = f"pobsync-command@{socket.gethostname()}"
    result = subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(key)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise OSError(f"cannot create {key}: {result.stderr.strip() or 'ssh-keygen failed'}")
    return key, True


def remote_command_argv(spec: HostSpec, command: tuple[str, ...]) -> list[str]:
    """ssh to the host with the command's own key; the remote forces the command.

    Nothing is sent as the command: the authorized_keys line decides what runs, so a
    changed line on the remote cannot be steered from here either.
    Raises FileNotFoundError when the key was never created.
    """
    key = command_key_path(spec.hooks.command_keys_dir, command)
    if not key.exists():
        raise FileNotFoundError(
            f"no key for remote command {command_string(command)!r}: run "
            f"`pobsync ssh-key --command {shlex.quote(command_string(command))}` and add "
            "its line on the remote"
        )
    ssh = dataclasses.replace(spec.ssh, key_path=key)
    return [
        *ssh_argv(ssh),
        "-T",
        "-o",
        "ClearAllForwardings=yes",
        f"{ssh.user}@{ssh.address.strip('[]')}",
    ]


def print_command_key(command: Any, text: str) -> None:
    """`pobsync ssh-key --command`: ensure the key, print its authorized_keys line."""
    from django.core.exceptions import ValidationError
    from django.core.management.base import CommandError

    from pobsync_models.management.hook_args import parse_command
    from pobsync_models.specs import command_keys_dir
    from pobsync_models.validators import validate_remote_command

    try:
        argv = parse_command(text)
        validate_remote_command(argv)
        key, created = ensure_command_key(command_keys_dir(), argv)
    except ValidationError as exc:
        raise CommandError(exc.messages[0]) from None
    except (ValueError, OSError) as exc:
        raise CommandError(str(exc)) from None
    if created:
        command.stderr.write(f"created {key}")
    public = key.with_name(key.name + ".pub").read_text(encoding="utf-8")
    command.stderr.write(
        "add this line to ~/.ssh/authorized_keys of the backup user on the remote "
        "(this key can run exactly this command; see docs/hooks.md):"
    )
    command.stdout.write(authorized_line(argv, public))
