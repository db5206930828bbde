"""gunicorn settings for the web container, read from the environment.

    POBSYNC_WEB_BIND              address:port to listen on (default 0.0.0.0:8000)
    POBSYNC_WEB_WORKERS           worker processes (default 2)
    POBSYNC_WEB_THREADS           threads per worker (default 4)
    POBSYNC_WEB_TIMEOUT           seconds a request may take before its worker is
                                  restarted (default 60)
    POBSYNC_WEB_GRACEFUL_TIMEOUT  seconds to finish requests after SIGTERM (default 20)
    POBSYNC_LOG_LEVEL             also gunicorn's error-log level

Access and error logs go to stdout/stderr, so `docker compose logs web` shows them.
"""

from __future__ import annotations

import os


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SystemExit(f"{name}={raw!r} is not an integer") from None
    if value < 1:
        raise SystemExit(f"{name}={value} must be at least 1")
    return value


wsgi_app = "pobsync_web.wsgi:application"
bind = [os.environ.get("POBSYNC_WEB_BIND", "").strip() or "0.0.0.0:8000"]  # noqa: S104
workers = _int("POBSYNC_WEB_WORKERS", 2)
threads = _int("POBSYNC_WEB_THREADS", 4)
timeout = _int("POBSYNC_WEB_TIMEOUT", 60)
graceful_timeout = _int("POBSYNC_WEB_GRACEFUL_TIMEOUT", 20)
# Heartbeat files in memory, not on the container's overlay filesystem.
worker_tmp_dir = "/dev/shm"  # noqa: S108
accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("POBSYNC_LOG_LEVEL", "info").strip().lower() or "info"
# Behind a TLS-terminating proxy the X-Forwarded-* headers come from another container.
forwarded_allow_ips = os.environ.get("POBSYNC_WEB_FORWARDED_ALLOW_IPS", "127.0.0.1")
# gunicorn 27's runtime control socket would land in the working directory (the
# POBSYNC_HOME volume); nothing uses it, so it is off (older gunicorn ignores this).
control_socket_disable = True
