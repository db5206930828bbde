"""The real `pobsync` executable, run as an operator would, against its own SQLite file."""

from __future__ import annotations

import sqlite3

import pytest

from tests.support.cli import run_pobsync

pytestmark = pytest.mark.slow


@pytest.fixture
def env(tmp_path):
    home = tmp_path / "home"
    environment = {
        "POBSYNC_HOME": str(home),
        "DATABASE_URL": f"sqlite:///{home}/pobsync.sqlite3",
        "POBSYNC_SECRET_KEY": "test-secret-key-not-for-production",
    }
    migrated = run_pobsync("django", "migrate", "-v0", env=environment)
    assert migrated.returncode == 0, migrated.stderr
    return environment


def host_rows(env) -> list[tuple]:
    db = env["DATABASE_URL"].removeprefix("sqlite:///")
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT name, address, sources FROM pobsync_models_host").fetchall()


def test_it_lists_every_subcommand_with_one_line_each(env, tmp_path):
    result = run_pobsync("--help", env=env, cwd=tmp_path)
    assert result.returncode == 0
    for name in ("configure-global", "configure-host", "hosts", "show-host", "check", "django"):
        line = next(line for line in result.stdout.splitlines() if line.startswith(f"  {name} "))
        assert len(line.split(None, 1)[1]) > 10  # a summary follows the name


def test_it_shows_a_subcommands_own_help(env, tmp_path):
    result = run_pobsync("configure-host", "--help", env=env, cwd=tmp_path)
    assert result.returncode == 0
    assert "usage: pobsync configure-host" in result.stdout
    assert "--keep-daily" in result.stdout


def test_it_passes_django_commands_through(env, tmp_path):
    result = run_pobsync("django", "check", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_it_runs_the_done_when_sequence_from_any_directory(env, tmp_path):
    root = tmp_path / "pb"
    first = run_pobsync("configure-global", "--backup-root", str(root), env=env, cwd="/")
    assert first.returncode == 0, first.stderr
    assert root.is_dir()
    added = run_pobsync(
        "configure-host", "web1", "--address", "127.0.0.1", "--source", "/etc", env=env, cwd="/"
    )
    assert added.returncode == 0, added.stderr
    assert "host web1 created" in added.stdout
    listed = run_pobsync("hosts", env=env, cwd=tmp_path)
    assert listed.returncode == 0
    row = listed.stdout.splitlines()[1].split()
    assert row[:2] == ["web1", "new"] and row[-1] == "127.0.0.1"


def test_it_reports_an_update_once_and_then_nothing(env, tmp_path):
    run_pobsync("configure-global", "--backup-root", str(tmp_path / "pb"), env=env)
    run_pobsync("configure-host", "web1", "--address", "127.0.0.1", "--source", "/etc", env=env)
    changed = run_pobsync("configure-host", "web1", "--address", "10.0.0.5", env=env)
    assert changed.returncode == 0
    assert "address: 127.0.0.1 -> 10.0.0.5" in changed.stdout
    again = run_pobsync("configure-host", "web1", "--address", "10.0.0.5", env=env)
    assert again.stdout.strip() == "host web1 unchanged"
    assert host_rows(env) == [("web1", "10.0.0.5", '["/etc"]')]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["configure-host", "web1", "--address", "h"], "no global configuration yet"),
        (["configure-global", "--backup-root", "relative/path"], "is not absolute"),
        (["show-host", "nobody"], "unknown host 'nobody'"),
        (["no-such-command"], "unknown command 'no-such-command'"),
    ],
)
def test_it_fails_bad_input_with_one_line_and_no_traceback(env, tmp_path, args, message):
    result = run_pobsync(*args, env=env, cwd=tmp_path)
    assert result.returncode != 0
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["configure-host", "../x", "--address", "h"], "not safe as a directory name"),
        (["configure-host", "web2", "--address", "h", "--keep-daily", "-1"], "negative"),
        (["configure-host", "web2", "--address", "h", "--rsync-option=--rsh=x"], "not allowed"),
        (["configure-host", "web2", "--address", "h", "--source", "etc"], "not absolute"),
        (["configure-host", "web2", "--address=-oProxyCommand=x"], "not a host name"),
        (["configure-host", "unknown-new-host"], "needs --address"),
    ],
)
def test_it_writes_nothing_when_a_host_is_invalid(env, tmp_path, args, message):
    run_pobsync("configure-global", "--backup-root", str(tmp_path / "pb"), env=env)
    before = host_rows(env)
    result = run_pobsync(*args, env=env, cwd=tmp_path)
    assert result.returncode != 0
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr
    assert host_rows(env) == before


def test_it_explains_an_unmigrated_database_in_one_line(tmp_path):
    env = {
        "POBSYNC_HOME": str(tmp_path),
        "DATABASE_URL": f"sqlite:///{tmp_path}/empty.sqlite3",
        "POBSYNC_SECRET_KEY": "x" * 50,
    }
    result = run_pobsync("hosts", env=env)
    assert result.returncode == 1
    assert "pobsync django migrate" in result.stderr
    assert "Traceback" not in result.stderr


def test_it_explains_a_bad_environment_variable_in_one_line(env, tmp_path):
    result = run_pobsync("hosts", env={**env, "POBSYNC_DEBUG": "maybe"})
    assert result.returncode == 2
    assert "POBSYNC_DEBUG='maybe' is not a boolean" in result.stderr
    assert "Traceback" not in result.stderr


def test_it_explains_a_bad_cipher_list_in_one_line(env, tmp_path):
    result = run_pobsync("hosts", env={**env, "POBSYNC_SSH_CIPHERS": "aes128-gcm; rm -rf /"})
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "POBSYNC_SSH_CIPHERS=" in result.stderr
    assert "is not auto, ssh or a comma-separated list of ssh cipher names" in result.stderr


def test_its_errors_name_no_python_class(env, tmp_path):
    result = run_pobsync("show-host", "nosuch", env=env, cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr == "pobsync: unknown host 'nosuch' (see `pobsync hosts`)\n"
