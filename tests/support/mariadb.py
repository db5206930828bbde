"""A throwaway MariaDB database on the machine's server (127.0.0.1:3306, root, no
password), created per use and dropped afterwards."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

from tests.support.need import need, port_open

MARIADB_HOST = os.environ.get("POBSYNC_TEST_MARIADB_HOST", "127.0.0.1")
MARIADB_PORT = int(os.environ.get("POBSYNC_TEST_MARIADB_PORT", "3306"))
MARIADB_USER = os.environ.get("POBSYNC_TEST_MARIADB_USER", "root")


def need_mariadb() -> None:
    try:
        import MySQLdb  # noqa: F401
    except ImportError:
        need(False, "mysqlclient is not installed (pip install -e '.[mariadb]')")
    need(
        port_open(MARIADB_HOST, MARIADB_PORT),
        f"no MariaDB server on {MARIADB_HOST}:{MARIADB_PORT}",
    )


def admin_connection():
    import MySQLdb

    return MySQLdb.connect(host=MARIADB_HOST, port=MARIADB_PORT, user=MARIADB_USER, passwd="")


def database_url(name: str) -> str:
    return f"mysql://{MARIADB_USER}@{MARIADB_HOST}:{MARIADB_PORT}/{name}"


@contextmanager
def fresh_database(prefix: str = "pobsync_t") -> Iterator[str]:
    """Create an empty utf8mb4 database; yields its DATABASE_URL; drops it after."""
    need_mariadb()
    name = f"{prefix}_{secrets.token_hex(4)}"
    conn = admin_connection()
    try:
        conn.cursor().execute(
            f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
        )
        yield database_url(name)
    finally:
        conn.cursor().execute(f"DROP DATABASE IF EXISTS `{name}`")
        conn.close()
