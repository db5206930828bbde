"""The README journey through the real `pobsync` executable, as separate processes:
configure, ssh-key (restricted to `rrsync -ro /` on the remote), trust-host, backup
--prune twice, retention; plus the CLI's error paths and a runner killed mid-backup.

Each test gets its own SQLite file, POBSYNC_HOME and sshd, because the processes must
share committed data (the pytest database is invisible to them).
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from pobsync_runner.lock import HostLock
from tests.engine.slow_transfer import make_slow_source, rsync_pids, temp_file_started, wait_for
from tests.support.sshd import SshServer, running_sshd

pytestmark = [pytest.mark.slow, pytest.mark.sshd]

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[2]


@dataclass
class Cli:
    env: dict[str, str]
    root: Path
    src: Path
    db: Path
    server: SshServer

    def __call__(self, *args: str, check: bool = True, **kw) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [str(BIN / "pobsync"), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            **kw,
        )
        if check:
            assert result.returncode == 0, (args, result.stdout, result.stderr)
        return result

    def popen(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen(
            [str(BIN / "pobsync"), *args],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def sql(self, query: str) -> list[tuple]:
        with sqlite3.connect(self.db) as conn:
            return conn.execute(query).fetchall()


def configured_cli(tmp_path: Path, server: SshServer, **env: str) -> Cli:
    """A migrated pobsync with its own SQLite file and POBSYNC_HOME, a backup root and
    an empty source tree, configured for `server`; `env` adds variables."""
    home = tmp_path / "home"
    home.mkdir()
    db = home / "pobsync.sqlite3"
    full_env = {
        "PATH": f"{BIN}:{os.environ['PATH']}",
        "HOME": str(tmp_path),
        "POBSYNC_HOME": str(home),
        "DATABASE_URL": f"sqlite:///{db}",
        **env,
    }
    root = tmp_path / "backups"
    root.mkdir()
    src = tmp_path / "remote" / "srv"
    src.mkdir(parents=True)
    c = Cli(full_env, root, src, db, server)
    c("django", "migrate", "-v", "0")
    c("configure-global", "--backup-root", str(root), "--ssh-user", server.user)
    return c


@pytest.fixture
def cli(tmp_path) -> Cli:
    with running_sshd(tmp_path / "sshd") as server:
        c = configured_cli(tmp_path, server)
        src = c.src
        c("configure-host", "web1", "--address", "127.0.0.1", "--port", str(server.port),
          "--source", str(src), "--keep-last", "1", "--keep-daily", "0", "--keep-weekly", "0",
          "--keep-monthly", "0")  # fmt: skip
        line = c("ssh-key").stdout.strip()
        assert line.startswith('restrict,command="rrsync -ro /" ssh-ed25519 ')
        (tmp_path / "sshd" / "authorized_keys").write_text(line + "\n")  # only pobsync's key
        yield c


def trust(cli: Cli) -> str:
    fingerprint = subprocess.run(
        ["ssh-keygen", "-lf", str(cli.server.known_hosts_path)],
        capture_output=True, text=True, check=True,
    ).stdout.split()[1]  # fmt: skip
    out = cli("trust-host", "web1", "--fingerprint", fingerprint).stdout
    assert fingerprint in out and "trusted [127.0.0.1]" in out
    return fingerprint


def test_it_walks_the_readme_journey_through_a_read_only_restricted_key(cli):
    (cli.src / "a.txt").write_text("alpha\n")
    (cli.src / "b.txt").write_text("beta\n")
    before = cli("backup", "web1", check=False)
    assert before.returncode == 1 and "host key verification failed" in before.stderr
    trust(cli)

    first = cli("backup", "web1", "--prune")
    assert "backup web1: success, snapshot " in first.stdout and "(full)" in first.stdout
    (cli.src / "b.txt").write_text("beta 2\n")
    second = cli("backup", "web1", "--prune")
    assert "(base " in second.stdout and "pruned 1 snapshot(s)" in second.stderr

    snaps = sorted(p for p in (cli.root / "web1").iterdir() if p.name[0].isdigit())
    states = cli.sql("select name, state from pobsync_models_snapshotrecord order by name")
    # the failed first try (host key) transferred nothing and left no partial;
    # keep-last 1 pruned the first backup
    assert [s for _, s in states] == ["pruned", "complete"]
    assert [p.name for p in snaps] == [states[1][0]]
    plan = cli("retention", "web1").stdout
    assert "policy last=1" in plan and "keep    last #1" in plan and "1 keep, 0 prune" in plan


def test_it_shares_inodes_between_two_snapshots_and_manage_py_is_the_same_command(cli):
    trust(cli)
    (cli.src / "same.bin").write_bytes(os.urandom(4096))
    cli("backup", "web1")
    result = subprocess.run(
        [sys.executable, "manage.py", "run_pobsync_backup", "web1"],
        cwd=REPO, env=cli.env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    one, two = sorted(p for p in (cli.root / "web1").iterdir() if p.name[0].isdigit())
    rel = str(cli.src).lstrip("/") + "/same.bin"
    assert (one / rel).stat().st_ino == (two / rel).stat().st_ino
    assert (one / rel).stat().st_nlink == 2


def test_its_errors_are_one_line_without_a_traceback(cli):
    fingerprint = trust(cli)
    again = cli("trust-host", "web1", "--fingerprint", fingerprint).stdout
    assert "already trusted" in again
    (cli.src / "f").write_text("x")
    cases = [
        (["backup", "nosuch"], "unknown host 'nosuch'"),
        (["retention", "web1", "--max-delete", "x"], "is not a number"),
        # Already trusted, but a wrong fingerprint is still an error, never ignored.
        (["trust-host", "web1", "--fingerprint", "SHA256:nope"], "matches none of the host's keys"),
    ]
    with HostLock(cli.root / "web1"):
        cases.append((["backup", "web1"], "host web1 is busy"))
        cases.append((["retention", "web1", "--apply", "--yes"], "busy"))
        for args, expected in cases:
            result = cli(*args, check=False)
            text = result.stdout + result.stderr
            assert expected in text, (args, text)
            assert result.returncode != 0, args
            assert len(result.stderr.strip().splitlines()) == 1, (args, result.stderr)
            assert "Traceback" not in text


def test_a_waiting_backup_runs_once_the_lock_is_free(cli):
    trust(cli)
    (cli.src / "f").write_text("x")
    lock = HostLock(cli.root / "web1")
    lock.acquire()
    waiting = cli.popen("backup", "web1", "--wait")
    try:
        assert waiting.poll() is None
        assert not wait_for(lambda: waiting.poll() is not None, timeout=2)
    finally:
        lock.release()
    out, err = waiting.communicate(timeout=60)
    assert waiting.returncode == 0, err
    assert "success" in out


def slow_backup_in_flight(cli: Cli) -> subprocess.Popen:
    """`pobsync backup web1` of a 4 MB source at 500 KB/s, once rsync is writing it."""
    trust(cli)
    make_slow_source(cli.src, megabytes=4)
    cli("configure-host", "web1", "--rsync-option=--bwlimit=500")
    backup = cli.popen("backup", "web1")
    host_dir = cli.root / "web1"

    def in_flight() -> bool:
        partials = list(host_dir.glob("*.partial")) if host_dir.exists() else []
        return any(temp_file_started(p, "b-big.bin") for p in partials)

    assert wait_for(in_flight, timeout=30), backup.communicate(timeout=5)
    assert rsync_pids(str(host_dir))
    return backup


def test_a_killed_runner_leaves_a_recorded_partial_and_its_rsync_dies_with_it(cli):
    runner = slow_backup_in_flight(cli)
    host_dir = cli.root / "web1"
    runner.send_signal(signal.SIGKILL)
    runner.communicate(timeout=10)
    assert wait_for(lambda: rsync_pids(str(host_dir)) == [], timeout=10)  # PR_SET_PDEATHSIG
    assert cli.sql("select state from pobsync_models_snapshotrecord") == [("partial",)]
    assert cli.sql("select outcome from pobsync_models_backuprun") == [("running",)]

    cli("configure-host", "web1", "--clear-rsync-options")
    done = cli("backup", "web1")
    assert "success" in done.stdout
    runs = cli.sql("select outcome, message from pobsync_models_backuprun order by id")
    assert runs[0][0] == "failed" and runs[0][1].startswith("interrupted")
    assert runs[1][0] == "success"
    states = cli.sql("select state from pobsync_models_snapshotrecord order by name")
    # the partial became the new snapshot's seed
    assert states == [("superseded",), ("complete",)]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signalled_backup_stops_its_rsync_and_says_so(cli, signum):
    # Ctrl-C (or a service manager's SIGTERM) on `pobsync backup`: rsync is stopped within
    # seconds, the run is recorded as cancelled and the command exits non-zero.
    backup = slow_backup_in_flight(cli)
    backup.send_signal(signum)
    out, err = backup.communicate(timeout=15)
    assert backup.returncode != 0 and "Traceback" not in err, out + err
    assert rsync_pids(str(cli.root / "web1")) == []
    runs = cli.sql("select outcome from pobsync_models_backuprun")
    assert runs == [("cancelled",)], (runs, out, err)
    assert err.startswith("pobsync: backup web1 cancelled; partial snapshot "), out + err


def test_a_signalled_verify_stops_reading_and_says_so(cli):
    trust(cli)
    make_slow_source(cli.src, megabytes=4)
    cli("backup", "web1")
    verify = cli.popen("verify", "web1", "--max-rate", "256k")  # about 16 s for 4 MB

    def reading() -> bool:
        return cli.sql("select outcome from pobsync_models_verifyrun") == [("running",)]

    assert wait_for(reading, timeout=30), verify.communicate(timeout=5)
    started = time.monotonic()
    verify.send_signal(signal.SIGTERM)
    out, err = verify.communicate(timeout=15)
    assert time.monotonic() - started < 5, (out, err)
    assert verify.returncode != 0 and "Traceback" not in err, out + err
    assert cli.sql("select outcome from pobsync_models_verifyrun") == [("cancelled",)]
    assert err.strip() == "pobsync: verify web1 cancelled", out + err
