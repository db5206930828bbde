"""Dispatch of a claimed job to the executor of its kind.

The queue (pobsync_models.queue) claims, leases and frees jobs without knowing what
they do; this module is the one place that maps `BackupJob.kind` to an executor:

    backup   pobsync_runner.backup.backup_job
    restore  pobsync_runner.restore.restore_job
    verify   pobsync_runner.verify.verify_job

Every executor has the same contract: it takes the claimed job (its kind's payload in
typed fields), a stop event it polls at least once a second, and the worker id; it
returns a JobResult (the job's final state and error) and raises HostBusy when the
host's disk lock is held outside the queue (a CLI backup), so the job is requeued.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from django.utils.module_loading import import_string

from pobsync_models.models import BackupJob

Kind = BackupJob.Kind
State = BackupJob.State


@dataclass(frozen=True)
class JobResult:
    """What an executor reports: the job's final state and, unless it succeeded, why."""

    state: str
    error: str = ""


Executor = Callable[..., JobResult]

EXECUTORS: dict[str, str] = {
    Kind.BACKUP: "pobsync_runner.backup.backup_job",
    Kind.RESTORE: "pobsync_runner.restore.restore_job",
    Kind.VERIFY: "pobsync_runner.verify.verify_job",
}


def execute(
    job: BackupJob,
    *,
    stop: threading.Event,
    worker_id: str,
    overrides: dict[str, Executor] | None = None,
) -> JobResult:
    """Run `job` with its kind's executor (or the override for that kind)."""
    executor = (overrides or {}).get(job.kind)
    if executor is None:
        path = EXECUTORS.get(job.kind)
        if path is None:
            return JobResult(
                State.FAILED, f"unknown job kind {job.kind!r}: is this runner older than the job?"
            )
        executor = import_string(path)
    return executor(job, stop=stop, worker_id=worker_id)
