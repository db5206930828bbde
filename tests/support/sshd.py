"""A real OpenSSH server on 127.0.0.1 with its own host and client keys, for tests and
benchmarks that pull with rsync over ssh exactly as from a remote machine.

    with running_sshd(tmp_path) as server:
        server.port, server.client_key_path, server.known_hosts_path, server.host_key_line
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.need import free_port, need, port_open

SSHD = "/usr/sbin/sshd"


@dataclass(frozen=True)
class SshServer:
    port: int
    host_key_line: str  # a known_hosts line for this server
    client_key_path: Path  # private key authorised for the current user
    known_hosts_path: Path  # a known_hosts file holding host_key_line
    log_path: Path
    address: str = "127.0.0.1"
    authorized_keys_path: Path | None = None

    def authorize(self, line: str) -> None:
        """Append an authorized_keys line (e.g. `restrict,command="..." <key>`); sshd
        reads the file on each connection, so it applies at once."""
        assert self.authorized_keys_path is not None  # noqa: S101
        with open(self.authorized_keys_path, "a", encoding="utf-8") as f:
            f.write(line.rstrip("\n") + "\n")

    @property
    def user(self) -> str:
        import pwd

        return pwd.getpwuid(os.getuid()).pw_name


def need_sshd() -> None:
    missing = [t for t in ("rsync", "ssh", "ssh-keygen") if shutil.which(t) is None]
    if not os.path.exists(SSHD):
        missing.append(SSHD)
    need(not missing, f"missing {', '.join(missing)} (apt-get install openssh-server rsync)")


def _keygen(path: Path) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "pobsync-test", "-f", str(path)],
        check=True,
    )


@contextmanager
def running_sshd(workdir: Path) -> Iterator[SshServer]:
    """Start sshd on a free loopback port; stop it (by its PidFile) on exit."""
    need_sshd()
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    host_key, client_key = workdir / "ssh_host_ed25519_key", workdir / "client_key"
    _keygen(host_key)
    _keygen(client_key)
    authorized = workdir / "authorized_keys"
    authorized.write_text((workdir / "client_key.pub").read_text().rstrip("\n") + "\n")
    port = free_port()
    pid_file, log_path = workdir / "sshd.pid", workdir / "sshd.log"
    config = workdir / "sshd_config"
    config.write_text(
        "\n".join(
            [
                f"Port {port}",
                "ListenAddress 127.0.0.1",
                f"HostKey {host_key}",
                f"AuthorizedKeysFile {authorized}",
                "PermitRootLogin prohibit-password",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "StrictModes no",
                "UsePAM no",
                f"PidFile {pid_file}",
                "Subsystem sftp internal-sftp",
                "MaxStartups 100:30:200",
                "MaxSessions 50",
                "",
            ]
        )
    )
    Path("/run/sshd").mkdir(parents=True, exist_ok=True)
    subprocess.run([SSHD, "-f", str(config), "-E", str(log_path)], check=True)
    deadline = time.monotonic() + 10
    while not port_open("127.0.0.1", port, timeout=0.2):
        if time.monotonic() > deadline:
            raise RuntimeError(f"sshd did not start: {log_path.read_text()[-2000:]}")
        time.sleep(0.05)
    key_type, key_b64 = (workdir / "ssh_host_ed25519_key.pub").read_text().split()[:2]
    host_key_line = f"[127.0.0.1]:{port} {key_type} {key_b64}"
    known_hosts = workdir / "known_hosts"
    known_hosts.write_text(host_key_line + "\n")
    try:
        yield SshServer(
            port, host_key_line, client_key, known_hosts, log_path, authorized_keys_path=authorized
        )
    finally:
        try:
            os.kill(int(pid_file.read_text().strip()), signal.SIGTERM)
        except (OSError, ValueError):
            pass
