from __future__ import annotations

import subprocess

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.sshd]


def ssh(sshd, known_hosts, *command: str) -> subprocess.CompletedProcess[str]:
    """ssh to the test server as pobsync does: batch mode, strict host key checking."""
    return subprocess.run(
        [
            "ssh",
            "-o", "BatchMode=yes",
            "-o", "StrictHostKeyChecking=yes",
            "-o", f"UserKnownHostsFile={known_hosts}",
            "-i", str(sshd.client_key_path),
            "-p", str(sshd.port),
            f"{sshd.user}@127.0.0.1",
            *command,
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )  # fmt: skip


def test_it_serves_ssh_with_the_generated_keys_and_strict_host_checking(sshd, tmp_path):
    marker = tmp_path / "marker.txt"
    marker.write_text("hello over ssh\n")
    result = ssh(sshd, sshd.known_hosts_path, "cat", str(marker))
    assert result.returncode == 0, result.stderr
    assert result.stdout == "hello over ssh\n"


def test_it_rejects_a_client_whose_known_hosts_lacks_the_server_key(sshd, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    result = ssh(sshd, empty, "true")
    assert result.returncode == 255
    assert "Host key verification failed" in result.stderr
