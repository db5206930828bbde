"""The ssh command pobsync uses to reach a host, and host-key trust.

Invariant: every connection checks the host key against pobsync's own known_hosts
file with StrictHostKeyChecking=yes and never asks a question (BatchMode=yes). The
user's and the system's ssh configuration are ignored (-F none) so a backup behaves
the same from the CLI, a runner, or a container. A key gets into that known_hosts file
only through `pobsync trust-host` (see docs/security.md).
"""

from __future__ import annotations

import functools
import subprocess
from dataclasses import dataclass
from pathlib import Path

from pobsync_models.specs import SshSpec

SERVER_ALIVE_INTERVAL = 15
SERVER_ALIVE_COUNT_MAX = 4

# OpenSSH's own cipher list with AES-GCM moved ahead of ChaCha20-Poly1305 (its default
# first choice, made for CPUs without AES instructions): the same ciphers, none added.
AES_GCM_FIRST = (
    "aes128-gcm@openssh.com,aes256-gcm@openssh.com,chacha20-poly1305@openssh.com,"
    "aes128-ctr,aes192-ctr,aes256-ctr"
)


@functools.cache
def cpu_has_aes(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether this machine's CPU has AES instructions (x86 "flags", ARM "Features")."""
    try:
        with open(cpuinfo, encoding="ascii", errors="replace") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key.strip() in ("flags", "Features"):
                    return "aes" in value.split()
    except OSError:
        pass
    return False


def cipher_options() -> list[str]:
    """POBSYNC_SSH_CIPHERS: "auto" prefers AES-GCM where this machine's CPU has AES
    instructions (every byte of a backup is encrypted by the remote's sshd and decrypted
    here, and with AES-NI that costs a fraction of ChaCha20-Poly1305's CPU); "ssh" keeps
    ssh's own order; anything else is ssh's Ciphers list (docs/engine.md, "The ssh
    cipher")."""
    from django.conf import settings

    choice = getattr(settings, "POBSYNC_SSH_CIPHERS", "auto")
    if choice == "auto":
        choice = _aes_gcm_first() if cpu_has_aes() else "ssh"
    return [] if choice == "ssh" else ["-o", f"Ciphers={choice}"]


def _aes_gcm_first() -> str:
    """AES_GCM_FIRST without the ciphers this ssh lacks (one built without OpenSSL has
    no AES-GCM, and ssh refuses a Ciphers list naming one it does not know); "ssh"
    when no AES-GCM is left or ssh cannot say."""
    known = client_ciphers()
    ours = [c for c in AES_GCM_FIRST.split(",") if c in known]
    return ",".join(ours) if any(c.startswith("aes") and "-gcm" in c for c in ours) else "ssh"


@functools.cache
def client_ciphers() -> frozenset[str]:
    """The ciphers this machine's ssh supports (`ssh -Q cipher`, once per process)."""
    try:
        out = subprocess.run(
            ["ssh", "-Q", "cipher"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return frozenset()
    return frozenset(out.stdout.split()) if out.returncode == 0 else frozenset()


def ssh_argv(ssh: SshSpec, *, ciphers: bool = True) -> list[str]:
    """ssh and its options, without the destination (rsync adds user@host).
    `ciphers=False`: ssh's own cipher order (the benchmarks' plain copy)."""
    return [
        "ssh",
        "-F", "none",
        "-i", str(ssh.key_path),
        "-p", str(ssh.port),
        "-o", "BatchMode=yes",
        "-o", "IdentitiesOnly=yes",
        "-o", "StrictHostKeyChecking=yes",
        "-o", f"UserKnownHostsFile={ssh.known_hosts_path}",
        "-o", "GlobalKnownHostsFile=/dev/null",
        "-o", "UpdateHostKeys=no",
        "-o", f"ConnectTimeout={ssh.connect_timeout}",
        "-o", f"ServerAliveInterval={SERVER_ALIVE_INTERVAL}",
        "-o", f"ServerAliveCountMax={SERVER_ALIVE_COUNT_MAX}",
        "-o", "LogLevel=ERROR",
        *(cipher_options() if ciphers else []),
    ]  # fmt: skip


def rsync_rsh(ssh: SshSpec, *, ciphers: bool = True) -> str:
    """The value of rsync's -e option.

    rsync splits this string itself (no shell is involved): words are separated by
    spaces, and single or double quotes keep spaces in a word, a doubled quote inside
    quotes standing for the quote itself. Paths with spaces are quoted that way.
    """
    return " ".join(_rsync_quote(arg) for arg in ssh_argv(ssh, ciphers=ciphers))


def _rsync_quote(arg: str) -> str:
    if arg and not any(c in arg for c in " '\""):
        return arg
    return "'" + arg.replace("'", "''") + "'"


def host_pattern(address: str, port: int) -> str:
    """How ssh names a host in known_hosts: bare on port 22, else [addr]:port."""
    bare = address.strip("[]")
    return bare if port == 22 else f"[{bare}]:{port}"


def remote_prefix(ssh: SshSpec) -> str:
    """`user@address:` for rsync; IPv6 addresses in brackets."""
    address = ssh.address
    if ":" in address and not address.startswith("["):
        address = f"[{address}]"
    return f"{ssh.user}@{address}:"


@dataclass(frozen=True)
class ScannedKey:
    line: str  # a known_hosts line: "<pattern> <type> <base64>"
    key_type: str
    fingerprint: str  # SHA256:...


def scan_host_keys(address: str, port: int, timeout: int) -> list[ScannedKey]:
    """The host's public keys via ssh-keyscan, with their SHA256 fingerprints.

    Raises OSError with one line when the host cannot be reached.
    """
    result = subprocess.run(
        ["ssh-keyscan", "-T", str(timeout), "-p", str(port), "--", address.strip("[]")],
        capture_output=True,
        text=True,
        timeout=timeout * 3 + 5,
        check=False,
    )
    keys = []
    pattern = host_pattern(address, port)
    for raw in result.stdout.splitlines():
        parts = raw.split()
        if len(parts) < 3 or raw.startswith("#"):
            continue
        line = f"{pattern} {parts[1]} {parts[2]}"
        keys.append(ScannedKey(line, parts[1], fingerprint(line)))
    if not keys:
        detail = (result.stderr.strip().splitlines() or ["no answer"])[-1]
        raise OSError(f"no host key from {pattern}: {detail}")
    return sorted(keys, key=lambda k: k.key_type)


def fingerprint(known_hosts_line: str) -> str:
    result = subprocess.run(
        ["ssh-keygen", "-l", "-E", "sha256", "-f", "-"],
        input=known_hosts_line + "\n",
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.split()[1]


def known_lines(known_hosts: Path, pattern: str) -> list[str]:
    """The lines of `known_hosts` recorded for exactly this host pattern."""
    try:
        text = known_hosts.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    return [line for line in text.splitlines() if line.split(" ", 1)[0] == pattern]


def record_host_keys(known_hosts: Path, pattern: str, lines: list[str]) -> None:
    """Replace the host's lines in known_hosts with `lines` (atomic rewrite, mode 0644)."""
    try:
        kept = [
            line
            for line in known_hosts.read_text(encoding="utf-8").splitlines()
            if line.split(" ", 1)[0] != pattern
        ]
    except FileNotFoundError:
        kept = []
    known_hosts.parent.mkdir(parents=True, exist_ok=True)
    tmp = known_hosts.with_name(known_hosts.name + ".tmp")
    tmp.write_text("\n".join([*kept, *lines]) + "\n", encoding="utf-8")
    tmp.chmod(0o644)
    tmp.replace(known_hosts)
