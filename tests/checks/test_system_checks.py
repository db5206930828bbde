from __future__ import annotations

import os
import subprocess
from contextlib import contextmanager

import pytest

from pobsync_models.checks import run_pobsync_checks
from pobsync_models.models import Host, Schedule
from pobsync_models.storages import MARKER_FILE
from tests.support.cli import run_pobsync
from tests.support.factories import make_config, make_host, make_schedule
from tests.support.need import need

pytestmark = pytest.mark.django_db


def ids() -> list[str]:
    return sorted(problem.id for problem in run_pobsync_checks())


@pytest.fixture
def key(tmp_path):
    path = tmp_path / "id_ed25519"
    path.write_text("not really a key, but readable")
    return path


def test_it_reports_a_missing_global_configuration():
    assert "pobsync.E001" in ids()


def test_it_passes_a_configured_server(tmp_path, key):
    (tmp_path / "root").mkdir()
    make_config(tmp_path / "root", ssh_key_path=str(key))  # marks the default storage
    make_host("web1")
    assert ids() == []


def test_it_reports_a_default_storage_without_its_marker(tmp_path, key):
    (tmp_path / "root").mkdir()
    make_config(tmp_path / "root", ssh_key_path=str(key))
    (tmp_path / "root" / MARKER_FILE).unlink()  # an unmounted disk
    assert ids() == ["pobsync.E008"]


def test_it_reports_a_backup_root_that_does_not_exist(tmp_path, key):
    make_config(tmp_path / "missing", ssh_key_path=str(key))
    assert ids() == ["pobsync.E002"]


def test_it_reports_a_backup_root_that_is_a_file(tmp_path, key):
    (tmp_path / "file").write_text("")
    make_config(tmp_path / "file", ssh_key_path=str(key))
    assert ids() == ["pobsync.E002"]


@contextmanager
def unwritable(path):
    """Root ignores mode bits, so as root use the immutable attribute instead."""
    if os.geteuid() == 0:
        done = subprocess.run(["chattr", "+i", str(path)], capture_output=True)
        need(done.returncode == 0, f"chattr +i is not supported here: {done.stderr!r}")
        try:
            yield
        finally:
            subprocess.run(["chattr", "-i", str(path)], check=True)
    else:
        path.chmod(0o500)
        try:
            yield
        finally:
            path.chmod(0o700)


def test_it_reports_a_backup_root_it_cannot_write(tmp_path, key):
    root = tmp_path / "root"
    root.mkdir()
    make_config(root, ssh_key_path=str(key))
    with unwritable(root):
        assert ids() == ["pobsync.E003"]


def test_it_reports_each_enabled_host_whose_key_is_unreadable(tmp_path, key):
    (tmp_path / "root").mkdir()
    make_config(tmp_path / "root", ssh_key_path=str(key))
    make_host("good")
    make_host("bad", ssh_key_path=str(tmp_path / "nope"))
    make_host("off", ssh_key_path=str(tmp_path / "nope"), enabled=False)
    problems = run_pobsync_checks()
    assert [(p.id, p.obj) for p in problems] == [("pobsync.E006", "bad")]
    assert "missing or unreadable" in problems[0].msg


@pytest.mark.slow
def test_it_reports_rsync_and_ssh_missing_from_path_and_fails_the_command(tmp_path):
    env = {
        "POBSYNC_HOME": str(tmp_path),
        "DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3",
        "POBSYNC_SECRET_KEY": "k" * 50,
        "PATH": str(tmp_path / "empty-bin"),
    }
    assert run_pobsync("django", "migrate", "-v0", env=env).returncode == 0
    result = run_pobsync("check", env=env)
    assert result.returncode == 1
    for code in ("pobsync.E001", "pobsync.E004", "pobsync.E005"):
        assert code in result.stderr
    assert "Traceback" not in result.stderr


def test_it_does_not_block_migrate_or_runserver_checks_on_an_unconfigured_server():
    from django.core.checks import run_checks

    assert [c.id for c in run_checks() if c.id.startswith("pobsync")] == []


def test_it_reports_rows_stored_before_the_validators_matched_whole_values(tmp_path, key):
    """Older versions stored "nl1\\n" as a host name and addresses, users and rsync
    options ending in a newline; the check names each row and what to run."""
    make_config(tmp_path / "root", ssh_key_path=str(key))
    (tmp_path / "root").mkdir()
    make_host("web1")
    bad = make_host("nl1")
    Host.objects.filter(pk=bad.pk).update(name="nl1\n")
    other = make_host("web2")
    Host.objects.filter(pk=other.pk).update(address="127.0.0.1\n", rsync_options=["--bwlimit=5M\n"])
    schedule = make_schedule(make_host("web3"))
    Schedule.objects.filter(pk=schedule.pk).update(timezone="UTC\n")
    problems = [p for p in run_pobsync_checks() if p.id == "pobsync.E007"]
    messages = sorted(p.msg for p in problems)
    assert len(messages) == 3, messages
    assert messages[0].startswith("host 'nl1\\n': name: host name 'nl1\\n' is not safe")
    assert messages[1].startswith("host 'web2': address: address '127.0.0.1\\n'")
    assert messages[2].startswith("schedule ") and "time zone 'UTC\\n'" in messages[2]
    assert all("\n" not in p.msg for p in problems)
    assert "remove-host" in next(p.hint for p in problems if "nl1" in p.msg)
