"""Stand-ins for the engine's run_backup (POBSYNC_RUNNER_EXECUTOR) for protocol tests
and the benchmark: same signature and contract (polls `stop`, writes a BackupRun with
start and end times), no rsync. The end-to-end tests use the real engine."""

from __future__ import annotations

import os
import threading
import time

from django.db import connection
from django.utils import timezone

from pobsync_models.models import BackupJob, BackupRun, Host
from pobsync_models.run_status import record_finished_run


def _run(host: Host, job: BackupJob | None, worker_id: str, seconds: float, stop) -> BackupRun:
    started = timezone.now()
    deadline = time.monotonic() + seconds
    outcome = BackupRun.Outcome.SUCCESS
    while (left := deadline - time.monotonic()) > 0:
        if stop is not None and stop.wait(min(left, 0.2)):
            outcome = BackupRun.Outcome.CANCELLED
            break
    run = BackupRun.objects.create(
        host=host,
        job=job,
        outcome=outcome,
        started_at=started,
        finished_at=timezone.now(),
        worker_id=worker_id,
        message="stopped" if outcome == BackupRun.Outcome.CANCELLED else "",
    )
    record_finished_run(run)  # as the engine's _finish does
    return run


def short(host: Host, *, job=None, prune=False, stop=None, worker_id="", **kw) -> BackupRun:
    """A few milliseconds of 'backup' (POBSYNC_TEST_JOB_SECONDS, default 0.01)."""
    seconds = float(os.environ.get("POBSYNC_TEST_JOB_SECONDS", "0.01"))
    return _run(host, job, worker_id, seconds, stop)


def idle_disconnect(host: Host, *, job=None, prune=False, stop=None, worker_id="", **kw):
    """Let the server drop the runner's connection while 'rsync' runs (wait_timeout=1,
    3 s idle), then return without touching the database: the runner's own result
    write is what must survive the dead connection."""
    run = BackupRun.objects.create(
        host=host, job=job, started_at=timezone.now(), worker_id=worker_id
    )
    with connection.cursor() as cursor:
        cursor.execute("SET SESSION wait_timeout=1")
    (stop or threading.Event()).wait(3.0)
    run.outcome = BackupRun.Outcome.SUCCESS
    return run
