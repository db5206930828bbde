"""`pobsync channel add|list|remove|test` against a real SMTP server and HTTP receiver."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from pobsync_models.models import Channel
from tests.support.cli import run_pobsync
from tests.support.factories import make_config, make_host


def test_it_adds_lists_tests_and_removes_channels(db, smtp, receiver, capsys):
    make_config()
    make_host("h1")
    make_host("h2")
    call_command("channel", "add", "ops", "--email", "ops@example.com")
    call_command(
        "channel",
        "add",
        "hook",
        "--webhook",
        f"{receiver.url}/in",
        "--secret",
        "k",
        "--host",
        "h1",
        "--host",
        "h2",
        "--events",
        "host_failing,host_recovered",
        "host_overdue",
        "--remind-every",
        "4",
    )
    hook = Channel.objects.get(name="hook")
    assert sorted(h.name for h in hook.hosts.all()) == ["h1", "h2"]
    assert hook.events == ["host_failing", "host_overdue", "host_recovered"]
    assert hook.remind_every_hours == 4 and hook.secret == "k"
    capsys.readouterr()
    call_command("channel", "list")
    listing = capsys.readouterr().out
    assert "ops" in listing and "h1,h2" in listing and "4 h" in listing and "k\n" not in listing

    call_command("channel", "test", "ops")
    assert "channel ops: delivered to ops@example.com" in capsys.readouterr().out
    assert smtp.subjects() == ["pobsync test message for channel ops"]
    call_command("channel", "test", "hook")
    document = json.loads(receiver.requests[0].body)
    assert document["type"] == "test" and "X-Pobsync-Signature-256" in receiver.requests[0].headers

    receiver.status = 503
    with pytest.raises(CommandError, match=r"channel hook: not delivered: HTTP 503"):
        call_command("channel", "test", "hook")
    call_command("channel", "remove", "hook")
    assert not Channel.objects.filter(name="hook").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["add", "x", "--webhook", "ftp://h/"], "use http:// or https://"),
        (["add", "x", "--email", "not-an-address"], "valid email"),
        (["add", "x", "--email", "a@example.com", "--events", "nope"], "unknown event kind"),
        (["add", "x", "--email", "a@example.com", "--host", "ghost"], "unknown host 'ghost'"),
        (["add", "x", "--email", "a@example.com", "--secret", "s"], "only applies to --webhook"),
        (["add", "bad name", "--email", "a@example.com"], "name 'bad name'"),
        (["remove", "ghost"], "unknown channel 'ghost'"),
        (["test", "ghost"], "unknown channel 'ghost'"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(db, argv, message):
    make_config()
    with pytest.raises(CommandError, match=message):
        call_command("channel", *argv)
    assert not Channel.objects.exists()


@pytest.mark.slow
def test_the_pobsync_executable_prints_one_line_on_bad_input(tmp_path):
    env = {"POBSYNC_HOME": str(tmp_path), "DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3"}
    assert run_pobsync("django", "migrate", "-v0", env=env).returncode == 0
    done = run_pobsync("channel", "add", "x", "--webhook", "nope", env=env)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
