from __future__ import annotations

from datetime import datetime, timedelta

from django.db import DatabaseError, connection
from django.http import HttpRequest, JsonResponse
from django.utils import timezone

import pobsync_models
from pobsync_web.access import api_auth_error, api_require_safe, json_error
from pobsync_web.api.encode import iso
from pobsync_web.overview import (
    WorkerSummary,
    all_host_rows,
    host_counts,
    queue_counts,
    worker_summaries,
)

STRICT_CHOICES = ("", "processes", "hosts", "all")
PROBLEM_HOSTS_SHOWN = 50  # failing/overdue host names listed, most urgent first


def database_reachable() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError:
        return False
    return True


@api_require_safe
def status(request: HttpRequest) -> JsonResponse:
    """Service health (contract 5 of the project brief).

    The database check comes before authentication, because authentication itself reads
    the session and user tables: with the database down, anyone gets 503 and one bit
    of information. Otherwise it is staff-only like the rest of the API (401/403), so a
    container health check without credentials sees 401 = "up" and 503 = "down".
    """
    if not database_reachable():
        return json_error("database unreachable", 503)
    denied = api_auth_error(request)
    if denied is not None:
        return denied
    strict = request.GET.get("strict", "")
    if strict not in STRICT_CHOICES:
        return json_error(f"strict={strict!r}: use {', '.join(STRICT_CHOICES[1:])}", 400)
    now = timezone.now()
    workers = worker_summaries(now)
    rows = all_host_rows(now)
    hosts = host_counts(rows)
    queue = queue_counts(now)
    scheduler, runner = workers["scheduler"], workers["runner"]
    problems = []
    if not scheduler.alive:
        problems.append("no scheduler seen in the last 180 s")
    if not runner.alive:
        problems.append("no runner seen in the last 180 s")
    bad_hosts = [row.host.name for row in rows if row.health.health.is_problem]
    hosts_status = "failing" if bad_hosts else "ok"
    status_word = "ok" if not problems else "degraded"
    overall = "ok" if not problems and not bad_hosts else "degraded"
    failed_check = (strict in ("processes", "all") and problems) or (
        strict in ("hosts", "all") and bad_hosts
    )
    return JsonResponse(
        {
            # "status" keeps its first meaning: the processes (docs/api.md).
            "status": status_word,
            "hosts_status": hosts_status,
            "overall": overall,
            "problems": problems,
            "time": iso(now),
            "version": pobsync_models.__version__,
            "database": {"reachable": True, "vendor": connection.vendor},
            "scheduler": _worker(scheduler, now),
            "runners": _worker(runner, now),
            "queue": {"queued": queue.queued, "due": queue.due, "running": queue.running},
            "hosts": {
                "total": hosts.total,
                "enabled": hosts.enabled,
                "failing": hosts.failing,
                "overdue": hosts.overdue,
                "running": hosts.running,
                "problem_hosts": bad_hosts[:PROBLEM_HOSTS_SHOWN],
            },
        },
        status=503 if failed_check else 200,
    )


def _worker(summary: WorkerSummary, now: datetime) -> dict[str, object]:
    age = now - summary.last_seen_at if summary.last_seen_at else None
    return {
        "alive": summary.alive,
        "processes": summary.count,
        "registered": summary.registered,
        "last_seen_at": iso(summary.last_seen_at),
        "last_seen_seconds_ago": round(age / timedelta(seconds=1)) if age is not None else None,
    }
