"""The migrations and session settings on the real MariaDB server (a database per run)."""

from __future__ import annotations

import pytest

from tests.support.cli import run_pobsync
from tests.support.mariadb import admin_connection, fresh_database

# migrate alone may take 180 s on a loaded machine (its subprocess timeout).
pytestmark = [pytest.mark.slow, pytest.mark.mariadb, pytest.mark.timeout(600)]

SESSION = (
    "from django.db import connection; c = connection.cursor(); "
    "c.execute('SELECT @@session.time_zone, @@character_set_connection'); "
    "print(*c.fetchone())"
)


def test_it_migrates_an_empty_mariadb_database_and_talks_utc_utf8mb4(tmp_path):
    with fresh_database() as url:
        env = {"DATABASE_URL": url, "POBSYNC_HOME": str(tmp_path), "POBSYNC_SECRET_KEY": "k" * 50}
        migrated = run_pobsync("django", "migrate", "-v0", env=env, timeout=180)
        assert migrated.returncode == 0, migrated.stderr
        name = url.rsplit("/", 1)[1]
        conn = admin_connection()
        cur = conn.cursor()
        cur.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema=%s", (name,)
        )
        tables = {row[0] for row in cur.fetchall()}
        assert {
            "pobsync_models_globalconfig",
            "pobsync_models_host",
            "pobsync_models_schedule",
            "pobsync_models_backupjob",
            "pobsync_models_backuprun",
            "pobsync_models_snapshotrecord",
            "pobsync_models_workerprocess",
        } <= tables
        cur.execute(f"SHOW INDEX FROM `{name}`.pobsync_models_backupjob")
        indexes = {row[2] for row in cur.fetchall()}
        assert {"job_claim_idx", "job_unique_slot"} <= indexes
        conn.close()
        session = run_pobsync("django", "shell", "-v", "0", "-c", SESSION, env=env)
        assert session.stdout.split() == ["+00:00", "utf8mb4"], session.stderr
        unapplied = run_pobsync("django", "migrate", "--check", env=env)
        assert unapplied.returncode == 0
