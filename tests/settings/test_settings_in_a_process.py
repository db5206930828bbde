"""Settings as a real process sees them: pragmas in effect, secrets, deploy checks."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess

import pytest

from tests.support.cli import POBSYNC, run_pobsync

pytestmark = pytest.mark.slow

SHOW = (
    "import json; from django.db import connection; from django.conf import settings; "
    "c = connection.cursor(); "
    "c.execute('PRAGMA journal_mode'); jm = c.fetchone()[0]; "
    "c.execute('PRAGMA synchronous'); sync = c.fetchone()[0]; "
    "c.execute('PRAGMA busy_timeout'); busy = c.fetchone()[0]; "
    "print(json.dumps({'journal_mode': jm, 'synchronous': sync, 'busy_timeout': busy, "
    "'debug': settings.DEBUG, 'secret': settings.SECRET_KEY}))"
)


def _env(tmp_path, **extra):
    return {
        "POBSYNC_HOME": str(tmp_path / "home"),
        "DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3",
        **extra,
    }


def _show(env):
    result = run_pobsync("django", "shell", "-c", SHOW, env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_it_opens_the_default_sqlite_with_wal_and_normal_sync(tmp_path):
    shown = _show(_env(tmp_path, POBSYNC_SECRET_KEY="k" * 50))
    assert shown["journal_mode"] == "wal"
    assert shown["synchronous"] == 1  # NORMAL
    assert shown["busy_timeout"] >= 5000
    assert shown["debug"] is False


def test_it_takes_the_write_lock_when_a_transaction_begins(tmp_path):
    """transaction_mode=IMMEDIATE: a second writer is refused while a process merely holds
    atomic(), so lock waits happen at BEGIN (where busy_timeout applies) not mid-write."""
    env = _env(tmp_path, POBSYNC_SECRET_KEY="k" * 50)
    assert run_pobsync("django", "migrate", "-v0", env=env).returncode == 0
    holder = subprocess.Popen(
        [
            POBSYNC,
            "django",
            "shell",
            "-v",
            "0",
            "-c",
            "import sys, time\nfrom django.db import transaction\n"
            "with transaction.atomic():\n    print('held', flush=True)\n    time.sleep(5)\n",
        ],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        other = sqlite3.connect(f"{tmp_path}/db.sqlite3", timeout=0)
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            other.execute("BEGIN IMMEDIATE")
        other.close()
    finally:
        holder.kill()
        holder.wait()


def test_it_generates_one_secret_key_and_keeps_it(tmp_path):
    env = _env(tmp_path)
    first, second = _show(env)["secret"], _show(env)["secret"]
    assert first == second and len(first) >= 50
    key_file = tmp_path / "home" / "secret_key"
    assert key_file.stat().st_mode & 0o077 == 0


def test_it_prefers_the_secret_key_file(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("s" * 60)
    assert _show(_env(tmp_path, POBSYNC_SECRET_KEY_FILE=str(secret)))["secret"] == "s" * 60


def _deploy_warnings(env):
    result = run_pobsync("django", "check", "--deploy", "--tag", "security", env=env)
    return {word.rstrip(":") for word in result.stderr.split() if word.startswith("(security.")}


def test_it_passes_deploy_checks_except_what_only_tls_can_fix(tmp_path):
    env = _env(tmp_path, POBSYNC_SECRET_KEY="a-long-random-secret-" + "x9Q" * 20)
    assert _deploy_warnings(env) == {
        "(security.W004)",  # HSTS
        "(security.W008)",  # SSL redirect
        "(security.W012)",  # session cookie over HTTPS only
        "(security.W016)",  # CSRF cookie over HTTPS only
    }


def test_it_passes_every_deploy_check_behind_tls(tmp_path):
    env = _env(
        tmp_path,
        POBSYNC_SECRET_KEY="a-long-random-secret-" + "x9Q" * 20,
        POBSYNC_HTTPS="1",
        POBSYNC_HSTS_PRELOAD="1",
    )
    assert _deploy_warnings(env) == set()
