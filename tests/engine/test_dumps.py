"""Database dumps through forced-command keys into the snapshot (real sshd, sqlite3,
MariaDB): they land in _dumps/NAME, restore to the same data, are hard-linked when
unchanged, and fail the run readably when broken."""

from __future__ import annotations

import gzip
import os
import sqlite3
import subprocess
import threading

import pytest

from pobsync_models.models import BackupRun, SnapshotRecord
from pobsync_runner.backup import run_backup
from tests.engine.remote_commands import (
    authorize_command,
    keys_dir,  # noqa: F401  (a fixture)
    sh,
)
from tests.engine.slow_transfer import wait_for
from tests.support.mariadb import admin_connection, need_mariadb

pytestmark = [pytest.mark.slow, pytest.mark.sshd, pytest.mark.usefixtures("keys_dir")]
Outcome = BackupRun.Outcome


def with_dumps(engine, sshd, dumps: dict[str, list[str]], **fields) -> None:
    for argv in dumps.values():
        authorize_command(sshd, argv)
    engine.host.dumps = dumps
    for name, value in fields.items():
        setattr(engine.host, name, value)
    engine.host.full_clean()
    engine.host.save()


def sqlite_backup_command(db) -> list[str]:
    # VACUUM INTO copies a live database in one read transaction. sqlite3's .backup
    # copies 100 pages a step and starts over whenever another process writes: under
    # the steady writes below it never finished (killed after 60 s of silence). It
    # writes into a private temporary file (it must be empty), streamed by cat; docs/
    # hooks.md has the same line.
    return sh(
        f'f=$(mktemp) && sqlite3 {db} "VACUUM INTO \'$f\'" && cat "$f"; rc=$?; rm -f "$f"; exit $rc'
    )


def rows(db) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT id, body FROM notes ORDER BY id").fetchall()


def test_a_live_sqlite_database_is_dumped_restored_and_linked_when_unchanged(
    engine, sshd, tmp_path
):
    (engine.src / "a.txt").write_text("a")
    db = tmp_path / "app.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    with_dumps(engine, sshd, {"app.sqlite": sqlite_backup_command(db)})
    stop_writing = threading.Event()

    def writer() -> None:  # the database is being written to while it is dumped
        conn = sqlite3.connect(db, timeout=30)
        i = 0
        while not stop_writing.is_set():
            i += 1
            with conn:
                conn.execute("INSERT INTO notes (body) VALUES (?)", (f"note {i} " * 20,))
        conn.close()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        first = run_backup(engine.host)
    finally:
        stop_writing.set()
        thread.join()

    assert first.outcome == Outcome.SUCCESS, first.message
    dump = engine.host_dir / first.snapshot_name / "_dumps" / "app.sqlite"
    restored = tmp_path / "restored.sqlite"
    restored.write_bytes(dump.read_bytes())
    with sqlite3.connect(restored) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    got, now = rows(restored), rows(db)
    assert got and got == now[: len(got)]  # a consistent prefix of the live table
    [record] = first.dumps
    assert record["name"] == "app.sqlite" and record["file"] == "_dumps/app.sqlite"
    assert record["bytes"] == dump.stat().st_size and record["linked"] is False
    assert record["seconds"] >= 0 and record["error"] == ""

    second = run_backup(engine.host)  # nobody writes now: the same bytes again

    again = engine.host_dir / second.snapshot_name / "_dumps" / "app.sqlite"
    third = run_backup(engine.host)
    last = engine.host_dir / third.snapshot_name / "_dumps" / "app.sqlite"
    assert second.outcome == third.outcome == Outcome.SUCCESS
    assert third.dumps[0]["linked"] is True
    assert os.stat(last).st_ino == os.stat(again).st_ino  # hard-linked: no new space
    assert rows(last) == rows(db)


def test_a_mariadb_dump_through_a_forced_command_restores_to_the_same_data(engine, sshd, tmp_path):
    need_mariadb()
    import secrets

    name = f"pobsync_dump_{secrets.token_hex(4)}"
    copy = f"{name}_restored"
    admin = admin_connection()
    cur = admin.cursor()
    try:
        cur.execute(f"CREATE DATABASE `{name}`")
        cur.execute(f"CREATE TABLE `{name}`.items (id INT PRIMARY KEY, label VARCHAR(64))")
        cur.executemany(
            f"INSERT INTO `{name}`.items VALUES (%s, %s)",  # noqa: S608 (our own name)
            [(i, f"item {i}") for i in range(500)],
        )
        admin.commit()
        dump = [
            "mariadb-dump",
            "--host=127.0.0.1",
            "--user=root",
            "--single-transaction",
            "--skip-dump-date",
            "--databases",
            name,
        ]
        with_dumps(engine, sshd, {"mariadb.sql": dump}, dump_compress=True)
        (engine.src / "a.txt").write_text("a")

        first = run_backup(engine.host)
        second = run_backup(engine.host)

        assert first.outcome == second.outcome == Outcome.SUCCESS, first.message
        path = engine.host_dir / first.snapshot_name / "_dumps" / "mariadb.sql.gz"
        sql = gzip.decompress(path.read_bytes()).decode()
        assert "INSERT INTO `items`" in sql
        cur.execute(f"CREATE DATABASE `{copy}`")
        restore = sql.replace(f"`{name}`", f"`{copy}`")
        subprocess.run(
            ["mariadb", "--host=127.0.0.1", "--user=root"], input=restore, text=True, check=True
        )
        cur.execute(f"SELECT id, label FROM `{copy}`.items ORDER BY id")  # noqa: S608
        assert list(cur.fetchall()) == [(i, f"item {i}") for i in range(500)]
        linked = engine.host_dir / second.snapshot_name / "_dumps" / "mariadb.sql.gz"
        assert second.dumps[0]["linked"] is True
        assert os.stat(linked).st_ino == os.stat(path).st_ino
    finally:
        cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        cur.execute(f"DROP DATABASE IF EXISTS `{copy}`")
        admin.close()


def ssh_with(sshd, key, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ssh", "-F", "none", "-i", str(key), "-p", str(sshd.port), "-o", "BatchMode=yes",
         "-o", "IdentitiesOnly=yes", "-o", f"UserKnownHostsFile={sshd.known_hosts_path}",
         "-o", "StrictHostKeyChecking=yes", *extra],
        capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL, check=False,
    )  # fmt: skip


def test_a_command_key_runs_its_one_command_and_nothing_else(sshd, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("do not leak\n")
    key = authorize_command(sshd, ["/bin/echo", "the dump"])
    target = f"{sshd.user}@127.0.0.1"

    asked = ssh_with(sshd, key, target, "cat", str(secret))
    assert asked.stdout == "the dump\n"  # the forced command ran, not `cat`
    shell = ssh_with(sshd, key, "-tt", target)
    assert "PTY allocation request failed" in shell.stderr
    forward = ssh_with(
        sshd, key, "-o", "ExitOnForwardFailure=yes", "-N", "-R", "0:127.0.0.1:9", target
    )
    assert forward.returncode != 0 and "remote port forwarding failed" in forward.stderr


def test_a_failing_dump_fails_the_run_with_the_dumps_own_error_line(engine, sshd):
    (engine.src / "a.txt").write_text("a")
    broken = sh(
        "echo '-- partial'; echo 'mariadb-dump: Got error: 1045: Access denied' >&2; exit 2"
    )
    with_dumps(engine, sshd, {"db.sql": broken})

    run = run_backup(engine.host)

    assert run.outcome == Outcome.FAILED
    assert run.message.startswith(
        "dump db.sql exited with code 2: mariadb-dump: Got error: 1045: Access denied; "
        "partial snapshot"
    )
    assert SnapshotRecord.objects.get(name=run.snapshot_name).state == "partial"
    staging = engine.host_dir / f"{run.snapshot_name}.partial"
    assert list((staging / "_dumps").iterdir()) == []  # no half dump left behind
    assert not (engine.host_dir / run.snapshot_name).exists()
    run.refresh_from_db()
    assert "Access denied" in run.hook_log
    assert run.dumps[0]["error"].startswith("dump db.sql exited with code 2")


def test_an_empty_dump_fails_the_run(engine, sshd):
    (engine.src / "a.txt").write_text("a")
    with_dumps(engine, sshd, {"db.sql": ["/bin/true"]})

    run = run_backup(engine.host)

    assert run.outcome == Outcome.FAILED
    assert run.message.startswith("dump db.sql is empty; partial snapshot")


def test_a_dump_that_prints_an_error_but_exits_zero_fails_the_run(engine, sshd):
    (engine.src / "a.txt").write_text("a")
    with_dumps(engine, sshd, {"db.sql": sh("echo data; echo 'pg_dumpall: warning: x' >&2")})

    run = run_backup(engine.host)

    assert run.outcome == Outcome.FAILED
    assert run.message.startswith("dump db.sql wrote to stderr: pg_dumpall: warning: x")


def test_a_host_can_let_dumps_fail_with_a_warning(engine, sshd):
    (engine.src / "a.txt").write_text("a")
    with_dumps(engine, sshd, {"db.sql": sh("echo 'no server' >&2; exit 1")}, dumps_may_fail=True)

    run = run_backup(engine.host)

    assert run.outcome == Outcome.WARNING
    assert run.message == "dump db.sql exited with code 1: no server"
    snapshot = engine.host_dir / run.snapshot_name
    assert snapshot.is_dir() and not (snapshot / "_dumps" / "db.sql").exists()


def test_dumps_live_at_the_snapshot_root_apart_from_the_remotes_own_files(engine, sshd):
    (engine.src / "_dumps").mkdir()
    (engine.src / "_dumps" / "db.sql").write_text("the remote's own file")
    with_dumps(engine, sshd, {"db.sql": ["/bin/echo", "real"]})

    run = run_backup(engine.host)

    assert run.outcome == Outcome.SUCCESS, run.message
    snapshot = engine.host_dir / run.snapshot_name
    assert (snapshot / "_dumps" / "db.sql").read_text() == "real\n"
    mirrored = snapshot / engine.src.relative_to("/") / "_dumps" / "db.sql"
    assert mirrored.read_text() == "the remote's own file"


def test_a_base_copy_that_is_a_symlink_is_never_followed_or_linked(engine, sshd, tmp_path):
    (engine.src / "a.txt").write_text("a")
    with_dumps(engine, sshd, {"db.sql": ["/bin/echo", "same"]})
    first = run_backup(engine.host)
    old = engine.host_dir / first.snapshot_name / "_dumps" / "db.sql"
    elsewhere = tmp_path / "elsewhere.sql"
    elsewhere.write_text("same\n")  # identical bytes, reached only through a symlink
    old.unlink()
    old.symlink_to(elsewhere)

    second = run_backup(engine.host)

    assert second.outcome == Outcome.SUCCESS, second.message
    assert second.dumps[0]["linked"] is False
    new = engine.host_dir / second.snapshot_name / "_dumps" / "db.sql"
    assert not new.is_symlink() and new.read_text() == "same\n"
    assert os.stat(new).st_ino != os.stat(elsewhere).st_ino


def test_a_stalled_dump_is_killed_after_the_io_timeout_and_fails_the_run(engine, sshd):
    (engine.src / "a.txt").write_text("a")
    engine.config.rsync_timeout = 2
    engine.config.save()
    with_dumps(engine, sshd, {"db.sql": sh("echo '-- begin'; exec /bin/sleep 300")})

    run = run_backup(engine.host)

    assert run.outcome == Outcome.FAILED
    assert run.message.startswith("dump db.sql produced no output for 2s and was killed")
    assert SnapshotRecord.objects.get(name=run.snapshot_name).state == "partial"


def test_a_dump_cancelled_midway_ends_the_run_cancelled_with_nothing_committed(engine, sshd):
    (engine.src / "a.txt").write_text("a")
    with_dumps(engine, sshd, {"db.sql": sh("echo '-- begin'; exec /bin/sleep 300")})
    stop = threading.Event()
    staging = engine.host_dir
    threading.Thread(
        target=lambda: (
            wait_for(lambda: any(staging.glob("*.partial/_dumps/.db.sql.tmp"))) and stop.set()
        ),
        daemon=True,
    ).start()

    run = run_backup(engine.host, stop=stop)

    assert run.outcome == Outcome.CANCELLED
    assert SnapshotRecord.objects.get(name=run.snapshot_name).state == "partial"
    assert not (engine.host_dir / run.snapshot_name).exists()
