"""Fixtures for engine tests: a configured backup root and a host served by the real
sshd fixture (tests/support/sshd.py), pulling from a source tree the test builds."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from pobsync_models.models import GlobalConfig, Host
from tests.support.factories import make_config, make_host


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
