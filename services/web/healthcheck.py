"""The web container's HEALTHCHECK: GET /api/status/ on the local gunicorn.

Healthy (exit 0) when the answer is 200 or 401: /api/status/ first runs `SELECT 1`
and answers 503 to anyone when the database is unreachable, otherwise 401 to an
anonymous caller (docs/api.md). Anything else - 503, 500, a refused connection, a
timeout - is unhealthy (exit 1, one line on stdout for `docker inspect`).

Standard library only. It sends a Host header taken from POBSYNC_ALLOWED_HOSTS (so a
production allow-list does not turn the probe into a 400) and X-Forwarded-Proto: https
(so POBSYNC_HTTPS's redirect does not turn it into a 301).
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

HEALTHY = frozenset({200, 401})


def probe_host() -> str:
    for entry in os.environ.get("POBSYNC_ALLOWED_HOSTS", "").split(","):
        entry = entry.strip().lstrip(".")
        if entry and entry != "*":
            return entry
    return "127.0.0.1"


def probe_port() -> str:
    bind = os.environ.get("POBSYNC_WEB_BIND", "").strip() or "0.0.0.0:8000"  # noqa: S104
    return bind.rsplit(":", 1)[-1]


def main() -> int:
    url = f"http://127.0.0.1:{probe_port()}/api/status/"
    request = urllib.request.Request(  # noqa: S310 (a fixed http URL on loopback)
        url, headers={"Host": probe_host(), "X-Forwarded-Proto": "https"}
    )
    try:
        with urllib.request.urlopen(request, timeout=8) as response:  # noqa: S310
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except OSError as exc:
        sys.stdout.write(f"unhealthy: {url}: {exc}\n")
        return 1
    if status in HEALTHY:
        sys.stdout.write(f"healthy: {url} answered {status}\n")
        return 0
    sys.stdout.write(f"unhealthy: {url} answered {status}\n")
    return 1


if __name__ == "__main__":
    sys.exit(main())
