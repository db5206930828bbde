"""Fixtures for engine tests: a configured backup root and a host served by the real
sshd fixture (tests/support/sshd.py), pulling from a source tree the test builds."""

from __future__ import annotations

import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from pobsync_models.models import GlobalConfig, Host
from tests.engine.test_cli_journey import configured_cli, trust
from tests.support.factories import make_config, make_host
from tests.support.sshd import running_sshd
from tests.support.trees import build_tree


@dataclass
class Engine:
    root: Path  # the backup root
    src: Path  # the source tree on the "remote" (served by sshd)
    config: GlobalConfig
    host: Host

    @property
    def host_dir(self) -> Path:
        return self.root / self.host.name

    def snapshot_dirs(self) -> list[Path]:
        return sorted(p for p in self.host_dir.iterdir() if p.name[:1].isdigit())


@pytest.fixture
def engine(db, sshd, tmp_path) -> Engine:
    root = tmp_path / "backups"
    root.mkdir()
    src = tmp_path / "remote" / "data"
    src.mkdir(parents=True)
    config = make_config(
        root,
        ssh_user=sshd.user,
        ssh_port=sshd.port,
        ssh_key_path=str(sshd.client_key_path),
        known_hosts_path=str(sshd.known_hosts_path),
        connect_timeout=5,
        rsync_timeout=60,
    )
    host = make_host("web1", address="127.0.0.1", sources=[str(src)])
    return Engine(root, src, config, host)


@pytest.fixture
def bare_site(tmp_path):
    """A configured pobsync (own SQLite file) backing up a tree over a private sshd,
    whose authorized_keys holds the read-only backup key and the restore key."""
    with running_sshd(tmp_path / "sshd") as server:
        c = configured_cli(tmp_path, server, POBSYNC_HEARTBEAT_INTERVAL="1", POBSYNC_LEASE_TTL="10")
        src = c.src
        c("configure-host", "web1", "--address", "127.0.0.1", "--port", str(server.port),
          "--source", str(src), "--rsync-option=--hard-links",
          "--rsync-option=--xattrs", "--rsync-option=--acls")  # fmt: skip
        backup_line = c("ssh-key").stdout.strip()
        restore = c("ssh-key", "--restore", "--root", "/", "--host", "web1")
        restore_line = restore.stdout.strip()
        assert restore_line.startswith('restrict,command="rrsync -wo -no-del /" ssh-ed25519 ')
        assert "pobsync-restore@" in restore_line and "restores may write under /" in restore.stderr
        (tmp_path / "sshd" / "authorized_keys").write_text(f"{backup_line}\n{restore_line}\n")
        trust(c)
        build_tree(src)
        c("backup", "web1")
        runners: list[subprocess.Popen] = []
        c.start_runner = lambda: runners.append(c.popen("runner", "--loop", "--interval", "0.2"))
        try:
            yield c
        finally:
            for runner in runners:
                runner.send_signal(signal.SIGTERM)
                runner.wait(20)


@pytest.fixture
def site(bare_site):
    bare_site.start_runner()
    return bare_site
