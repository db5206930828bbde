from __future__ import annotations

from io import StringIO

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError

from pobsync_models import validators
from pobsync_models.models import Host, Schedule
from pobsync_models.specs import SnapshotName
from tests.support.factories import make_config, make_host

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "name",
    ["", "..", ".", "a/b", "has space", "x" * 65, "-leading-dash", ".hidden", "../x", "tab\tname"],
)
def test_it_rejects_host_names_unsafe_as_a_path_component(name):
    host = Host(name=name, address="127.0.0.1", sources=["/etc"])
    with pytest.raises(ValidationError) as exc:
        host.full_clean()
    assert "name" in exc.value.error_dict


@pytest.mark.parametrize("name", ["web1", "db-2.example.com", "a", "x" * 64, "node_7"])
def test_it_accepts_safe_host_names(name):
    Host(name=name, address="127.0.0.1", sources=["/etc"]).full_clean()


@pytest.mark.parametrize(
    "sources", [["etc"], ["./etc"], ["/etc", "/etc"], ["/bad\nname"], "not-a-list"]
)
def test_it_rejects_relative_duplicate_or_odd_sources(sources):
    with pytest.raises(ValidationError) as exc:
        Host(name="web1", address="127.0.0.1", sources=sources).full_clean()
    assert "sources" in exc.value.error_dict


@pytest.mark.parametrize(
    "option",
    ["--rsh=sh -c evil", "-e", "--delete", "--bwlimit=", "--bwlimit=1;rm", "--remove-source-files"],
)
def test_it_rejects_rsync_options_outside_the_allow_list(option):
    with pytest.raises(ValidationError) as exc:
        Host(name="web1", address="127.0.0.1", rsync_options=[option]).full_clean()
    assert "rsync_options" in exc.value.error_dict


@pytest.mark.parametrize("option", ["--bwlimit=5M", "-z", "--one-file-system", "--max-size=1.5G"])
def test_it_accepts_allow_listed_rsync_options(option):
    Host(name="web1", address="127.0.0.1", rsync_options=[option]).full_clean()


def test_it_rejects_negative_keep_counts():
    with pytest.raises(ValidationError) as exc:
        Host(name="web1", address="127.0.0.1", keep_daily=-1).full_clean()
    assert "keep_daily" in exc.value.error_dict


@pytest.mark.parametrize("cron", ["* * * *", "* * * * * *", "61 * * * *", "nonsense", ""])
def test_it_rejects_cron_expressions_that_are_not_five_valid_fields(cron):
    make_config()
    host = make_host("web1")
    with pytest.raises(ValidationError) as exc:
        Schedule(host=host, cron=cron).full_clean()
    assert "cron" in exc.value.error_dict


def test_it_rejects_an_unknown_timezone():
    make_config()
    host = make_host("web1")
    with pytest.raises(ValidationError) as exc:
        Schedule(host=host, cron="15 2 * * *", timezone="Mars/Olympus").full_clean()
    assert "timezone" in exc.value.error_dict


@pytest.mark.parametrize("cron", ["0 0 31 2 *", "0 0 30 2 *", "15 2 31 4,6,9,11 *"])
def test_it_rejects_a_cron_expression_that_never_fires(cron):
    make_config()
    with pytest.raises(ValidationError) as exc:
        Schedule(host=make_host("web1"), cron=cron).full_clean()
    assert exc.value.error_dict["cron"][0].messages == [
        f"cron expression {cron!r} never fires (no matching date within 5 years); "
        "check the day of month and the month"
    ]


@pytest.mark.parametrize("cron", ["0 0 29 2 *", "0 0 31 * *", "0 0 31 2 1"])
def test_it_accepts_a_cron_expression_that_fires_rarely(cron):
    make_config()
    Schedule(host=make_host("web1"), cron=cron).full_clean()


@pytest.mark.parametrize(
    ("validator", "value"),
    [
        (validators.validate_host_name, "nl1"),
        (validators.validate_address, "127.0.0.1"),
        (validators.validate_address, "[::1]"),
        (validators.validate_ssh_user, "backup"),
        (validators.validate_rsync_option, "--bwlimit=5M"),
        (validators.validate_rsync_option, "--compress-level=3"),
        (validators.validate_rsync_option, "--max-size=1G"),
        (validators.validate_rsync_option, "--min-size=10k"),
        (validators.validate_rsync_option, "--chmod=u+rwX,go-w"),
        (validators.validate_rsync_option, "--acls"),
        (validators.validate_absolute_path, "/srv/data"),
        (validators.validate_cron, "15 2 * * *"),
        (validators.validate_timezone, "UTC"),
    ],
)
def test_it_rejects_a_valid_value_followed_by_a_newline(validator, value):
    """`$` with re.match() also matches before a final newline: "nl1\\n" was a host."""
    validator(value)
    for bad in (value + "\n", value + "\r\n", "\n" + value):
        with pytest.raises(ValidationError):
            validator(bad)


def test_it_rejects_a_snapshot_name_followed_by_a_newline():
    assert SnapshotName.is_valid("2026-11-30T021500Z")
    assert not SnapshotName.is_valid("2026-11-30T021500Z\n")
    with pytest.raises(ValueError):
        SnapshotName("2026-11-30T021500Z\n")


def test_it_quotes_at_most_a_short_excerpt_of_a_rejected_value():
    with pytest.raises(ValidationError) as exc:
        validators.validate_address("x" * 5000 + "\n")
    (message,) = exc.value.messages
    assert len(message) < 120 and "\n" not in message


def test_the_cli_refuses_a_host_name_ending_in_a_newline():
    make_config()
    with pytest.raises(CommandError, match="not safe as a directory name"):
        call_command("configure_host", "nl1\n", "--address", "127.0.0.1", stdout=StringIO())
    with pytest.raises(CommandError, match="address"):
        call_command("configure_host", "nl1", "--address", "127.0.0.1\n", stdout=StringIO())
    assert not Host.objects.exists()
