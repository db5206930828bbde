"""Forced-command keys for engine tests: create a command's key the way
`pobsync ssh-key --command` does and authorise its restricted line on the test sshd."""

from __future__ import annotations

from pathlib import Path

import pytest

from pobsync_models.specs import command_keys_dir
from pobsync_runner.remotekeys import authorized_line, ensure_command_key
from tests.support.sshd import SshServer


@pytest.fixture
def keys_dir(settings, tmp_path):
    """Command keys (`ssh-key --command`) go to this test's own POBSYNC_SSH_DIR."""
    settings.POBSYNC_SSH_DIR = tmp_path / "ssh"
    return settings.POBSYNC_SSH_DIR


def authorize_command(sshd: SshServer, argv: list[str]) -> Path:
    """The command's private key, its `restrict,command=...` line added to sshd."""
    key, _created = ensure_command_key(command_keys_dir(), argv)
    sshd.authorize(authorized_line(argv, key.with_name(key.name + ".pub").read_text()))
    return key


def pid_gone(pid: int) -> bool:
    """The process ended (gone, or a zombie nobody has reaped yet)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state == "Z"


def env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines written by `env` in a hook, POBSYNC_* only."""
    out = {}
    for line in path.read_text().splitlines():
        key, _, value = line.partition("=")
        if key.startswith("POBSYNC_"):
            out[key] = value
    return out


def sh(script: str) -> list[str]:
    return ["/bin/sh", "-c", script]
