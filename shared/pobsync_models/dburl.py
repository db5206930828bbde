"""Turn a DATABASE_URL into a Django DATABASES entry (SQLite or MariaDB only).

Supported forms:
    sqlite:///relative/path.sqlite3     (relative to the working directory)
    sqlite:////absolute/path.sqlite3
    mysql://user:password@host:port/name   (mariadb:// is accepted as an alias)

SQLite is tuned so that web, scheduler and runners can share one file: WAL journal,
synchronous=NORMAL, BEGIN IMMEDIATE transactions and a busy timeout. MariaDB sessions
run in UTC with utf8mb4.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

SQLITE_BUSY_TIMEOUT_SECONDS = 30

SQLITE_INIT_COMMAND = "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
MARIADB_INIT_COMMAND = "SET time_zone='+00:00', sql_mode='STRICT_TRANS_TABLES'"


def parse_database_url(url: str, *, conn_max_age: int = 60) -> dict[str, Any]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "sqlite":
        # sqlite:///rel -> path "/rel" -> "rel"; sqlite:////abs -> "//abs" -> "/abs"
        path = unquote(parts.path)[1:] if parts.path.startswith("/") else unquote(parts.path)
        if not path:
            raise ImproperlyConfigured("DATABASE_URL: sqlite:// needs a file path")
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": path,
            "OPTIONS": {
                "transaction_mode": "IMMEDIATE",
                "timeout": SQLITE_BUSY_TIMEOUT_SECONDS,
                "init_command": SQLITE_INIT_COMMAND,
            },
            "CONN_MAX_AGE": 0,
            "TEST": {"NAME": None},
        }
    if scheme in {"mysql", "mariadb"}:
        name = unquote(parts.path.lstrip("/"))
        if not name:
            raise ImproperlyConfigured("DATABASE_URL: mysql:// needs a database name")
        options: dict[str, Any] = {
            "charset": "utf8mb4",
            "init_command": MARIADB_INIT_COMMAND,
        }
        query = parse_qs(parts.query)
        if "ssl_mode" in query:
            options["ssl_mode"] = query["ssl_mode"][-1]
        try:
            port = parts.port
        except ValueError:
            raise ImproperlyConfigured("DATABASE_URL: the port is not a number") from None
        return {
            "ENGINE": "django.db.backends.mysql",
            "NAME": name,
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname or "",
            "PORT": str(port or ""),
            "OPTIONS": options,
            "CONN_MAX_AGE": conn_max_age,
            "CONN_HEALTH_CHECKS": True,
            "TEST": {"CHARSET": "utf8mb4", "COLLATION": "utf8mb4_unicode_ci"},
        }
    shown = scheme or "(none)"
    raise ImproperlyConfigured(
        f"DATABASE_URL scheme {shown!r} is not supported: use sqlite:/// or mysql://"
    )
