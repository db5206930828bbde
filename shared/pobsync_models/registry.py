"""The process registry: which schedulers and runners are alive, read by `pobsync
workers`, `pobsync health` (container health checks) and /api/status/.

Invariant: a daemon upserts its WorkerProcess row (worker_id = "hostname:pid:tag") on every
pass and while a job runs (from the heartbeat thread), and deletes it on clean exit. A
row whose last_seen_at is old belongs to a process that died without cleaning up; the
scheduler deletes rows unseen for STALE_AFTER.
"""

from __future__ import annotations

import functools
import os
import secrets
import socket
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from pobsync_models import __version__
from pobsync_models.models import WorkerProcess

DEFAULT_MAX_AGE = 180  # seconds; contract 3 (`pobsync health`)
STALE_AFTER = timedelta(days=1)


def this_machine() -> str:
    return socket.gethostname()


@functools.cache
def current_worker_id() -> str:
    """hostname:pid:tag, fixed for the life of the process. The random tag keeps two
    processes apart that share a hostname but not a PID namespace (containers on the
    host network, pods): both may well be pid 7, and one must not take over the other's
    registry row."""
    return f"{this_machine()}:{os.getpid()}:{secrets.token_hex(2)}"


def touch(
    worker_id: str,
    kind: str,
    *,
    started_at: datetime,
    current_job_id: int | None = None,
    now: datetime | None = None,
) -> None:
    """Record that worker_id is alive now (insert on first call)."""
    now = now or timezone.now()
    seen = WorkerProcess.objects.filter(worker_id=worker_id).update(
        last_seen_at=now, current_job_id=current_job_id, kind=kind
    )
    if seen:
        return
    try:
        with transaction.atomic():
            WorkerProcess.objects.create(
                worker_id=worker_id,
                kind=kind,
                version=__version__,
                started_at=started_at,
                last_seen_at=now,
                current_job_id=current_job_id,
            )
    except IntegrityError:  # a reused pid whose old row was just re-seen; update it
        WorkerProcess.objects.filter(worker_id=worker_id).update(
            last_seen_at=now, current_job_id=current_job_id, kind=kind
        )


def forget(worker_id: str) -> None:
    WorkerProcess.objects.filter(worker_id=worker_id).delete()


def forget_stale(now: datetime | None = None) -> int:
    now = now or timezone.now()
    return WorkerProcess.objects.filter(last_seen_at__lt=now - STALE_AFTER).delete()[0]


def seen_here(kind: str, max_age: int, now: datetime | None = None) -> WorkerProcess | None:
    """The most recently seen process of `kind` on this machine within max_age s."""
    now = now or timezone.now()
    return (
        WorkerProcess.objects.filter(
            kind=kind,
            worker_id__startswith=f"{this_machine()}:",
            last_seen_at__gte=now - timedelta(seconds=max_age),
        )
        .order_by("-last_seen_at")
        .first()
    )


def age_text(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    if seconds < 172800:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} d"


def relative(moment: datetime | None, now: datetime, never: str = "never") -> str:
    """'3 h ago' / 'in 20 min' (ages as the dashboard shows them), `never` for None."""
    if moment is None:
        return never
    seconds = (now - moment).total_seconds()
    return f"{age_text(seconds)} ago" if seconds >= 0 else f"in {age_text(-seconds)}"
