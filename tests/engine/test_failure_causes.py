"""One failure, one story (real rsync, real sshd): a run that could not reach the host
names the cause in the same words whatever exit code rsync chose (255 or 12), and
leaves no partial snapshot behind, neither a new one nor a changed old one."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
from pathlib import Path

import pytest

from pobsync_models.models import BackupRun, SnapshotRecord
from pobsync_runner.backup import run_backup
from pobsync_runner.rsync_output import connection_failure, describe_failure
from pobsync_runner.snapshots import METADATA_FILE
from tests.engine.slow_transfer import make_slow_source, staging_dirs, temp_file_started, when
from tests.support.need import free_port

Outcome = BackupRun.Outcome
OTHER_HOST_KEY = "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
TAIL = [
    "rsync: connection unexpectedly closed (0 bytes received so far) [Receiver]",
]


@pytest.mark.parametrize(
    ("ssh_line", "cause"),
    [
        ("ssh: connect to host 127.0.0.1 port 43001: Connection refused", "connection refused"),
        ("root@127.0.0.1: Permission denied (publickey).", "authentication failed"),
        ("Connection timed out during banner exchange", "connection timed out"),
        (
            "Host key for [127.0.0.1]:5000 has changed and you have requested strict checking.",
            "host key verification failed",
        ),
    ],
)
def test_it_names_the_cause_the_same_way_for_exit_255_and_12(ssh_line, cause):
    messages = {
        describe_failure(code, [ssh_line, *TAIL, f"rsync error: ... (code {code}) at io.c(285)"])
        for code in (255, 12)
    }
    assert messages == {f"{cause}: {ssh_line}"}


def test_it_never_reads_rsyncs_own_permission_errors_as_ssh_authentication():
    lines = ['rsync: [sender] send_files failed to open "/srv/x": Permission denied (13)']
    assert connection_failure(lines) is None
    assert describe_failure(23, lines).startswith("rsync exited with code 23")


def no_trace_left(engine) -> bool:
    return not SnapshotRecord.objects.exists() and staging_dirs(engine.host_dir) == []


def wrong_client_key(engine, tmp_path) -> None:
    key = tmp_path / "not-authorised"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    engine.config.ssh_key_path = str(key)
    engine.config.save()


def changed_host_key(engine, tmp_path) -> None:
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{engine.config.ssh_port} ssh-ed25519 {OTHER_HOST_KEY}\n")
    engine.config.known_hosts_path = str(known)
    engine.config.save()


def closed_port(engine, tmp_path) -> None:
    engine.host.ssh_port = free_port()
    engine.host.save()


@pytest.fixture
def silent_port():
    """A port that accepts TCP connections and never says a word (a hung sshd)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    yield sock.getsockname()[1]
    sock.close()


@pytest.mark.slow
@pytest.mark.sshd
@pytest.mark.parametrize(
    ("breakage", "cause", "detail"),
    [
        (closed_port, "connection refused", "Connection refused"),
        (wrong_client_key, "authentication failed", "Permission denied (publickey"),
        (changed_host_key, "host key verification failed", "has changed"),
    ],
)
def test_it_fails_with_the_cause_and_leaves_no_partial(engine, tmp_path, breakage, cause, detail):
    (engine.src / "file.txt").write_text("data\n")
    breakage(engine, tmp_path)
    runs = [run_backup(engine.host) for _ in range(3)]  # an hourly retry, three times

    for run in runs:
        assert run.outcome == Outcome.FAILED
        assert run.message.startswith(f"{cause}: ") and detail in run.message, run.message
        assert run.message.endswith("nothing was transferred")
        assert run.snapshot_id is None and run.snapshot_name == ""
    assert {r.rsync_exit_code for r in runs} <= {12, 255}
    assert no_trace_left(engine)


@pytest.mark.slow
@pytest.mark.sshd
def test_it_names_a_hung_ssh_server_a_timeout(engine, silent_port):
    engine.host.ssh_port = silent_port
    engine.host.save()
    engine.config.connect_timeout = 1
    engine.config.save()

    run = run_backup(engine.host)

    assert run.outcome == Outcome.FAILED
    assert run.message.startswith("connection timed out: "), run.message
    assert no_trace_left(engine)


@pytest.mark.slow
@pytest.mark.sshd
def test_it_hands_an_unreachable_runs_seed_back_unchanged(engine):
    make_slow_source(engine.src)
    engine.host.rsync_options = ["--bwlimit=500"]
    engine.host.save()
    stop = threading.Event()
    when(lambda: any(temp_file_started(d, "b-big.bin") for d in staging_dirs(engine.host_dir)),
         stop.set)  # fmt: skip
    interrupted = run_backup(engine.host, stop=stop)
    assert interrupted.outcome == Outcome.CANCELLED
    (seed_dir,) = staging_dirs(engine.host_dir)
    before = sorted(str(p.relative_to(seed_dir)) for p in seed_dir.rglob("*"))

    port = engine.host.ssh_port
    engine.host.ssh_port = free_port()
    engine.host.save()
    failed = run_backup(engine.host)

    assert failed.message.startswith("connection refused: ")
    assert staging_dirs(engine.host_dir) == [seed_dir]  # same name, same content
    assert sorted(str(p.relative_to(seed_dir)) for p in seed_dir.rglob("*")) == before
    meta = json.loads((seed_dir / METADATA_FILE).read_text())
    assert meta["name"] == interrupted.snapshot_name
    (record,) = SnapshotRecord.objects.all()
    assert (record.name, record.state) == (interrupted.snapshot_name, "partial")
    assert Path(record.path) == seed_dir

    engine.host.ssh_port = port
    engine.host.rsync_options = []
    engine.host.save()
    done = run_backup(engine.host)
    assert done.outcome == Outcome.SUCCESS, done.message
    record.refresh_from_db()
    assert record.state == "superseded"
    meta = json.loads((engine.host_dir / done.snapshot_name / METADATA_FILE).read_text())
    assert meta["seed_name"] == interrupted.snapshot_name
