from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from pobsync_models.dburl import parse_database_url


def test_it_configures_sqlite_for_several_processes():
    db = parse_database_url("sqlite:////var/lib/pobsync/db.sqlite3")
    assert db["ENGINE"] == "django.db.backends.sqlite3"
    assert db["NAME"] == "/var/lib/pobsync/db.sqlite3"
    assert db["OPTIONS"]["transaction_mode"] == "IMMEDIATE"
    assert db["OPTIONS"]["timeout"] >= 5
    assert "journal_mode=WAL" in db["OPTIONS"]["init_command"]
    assert "synchronous=NORMAL" in db["OPTIONS"]["init_command"]


def test_it_reads_a_relative_sqlite_path():
    assert parse_database_url("sqlite:///var/db.sqlite3")["NAME"] == "var/db.sqlite3"


def test_it_configures_mariadb_in_utc_with_utf8mb4_and_health_checks():
    db = parse_database_url("mysql://pob%40sync:s%3Acret@db.internal:3307/pobsync")
    assert db["ENGINE"] == "django.db.backends.mysql"
    assert (db["USER"], db["PASSWORD"], db["HOST"], db["PORT"], db["NAME"]) == (
        "pob@sync",
        "s:cret",
        "db.internal",
        "3307",
        "pobsync",
    )
    assert db["OPTIONS"]["charset"] == "utf8mb4"
    assert "time_zone='+00:00'" in db["OPTIONS"]["init_command"]
    assert db["CONN_HEALTH_CHECKS"] is True


def test_it_accepts_mariadb_as_an_alias():
    assert parse_database_url("mariadb://root@127.0.0.1/x")["ENGINE"] == "django.db.backends.mysql"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgres://u@h/db", "not supported"),
        ("nonsense", "not supported"),
        ("mysql://root@127.0.0.1:3306/", "needs a database name"),
        ("mysql://root@127.0.0.1:port/db", "port is not a number"),
        ("sqlite://", "needs a file path"),
    ],
)
def test_it_rejects_unusable_urls_with_a_clear_message(url, message):
    with pytest.raises(ImproperlyConfigured, match=message):
        parse_database_url(url)
