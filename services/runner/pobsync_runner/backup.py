"""run_backup: one backup of one host, from lock to recorded outcome (contract 1).

Outcomes: rsync exit 0 -> success; 24 (vanished files) or a code the host lists ->
warning, snapshot committed; a stop request -> cancelled; anything else -> failed with
the error and the tail of rsync's stderr. A committed snapshot with no regular files
whose base had some is a warning too (an unmounted or emptied source looks like that).
Failed and cancelled runs leave a recorded partial snapshot that seeds the next run.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from django.db import InterfaceError, OperationalError, connection, transaction
from django.utils import timezone

from pobsync_models.models import BackupJob, BackupRun, GlobalConfig, Host
from pobsync_models.run_status import fail_running_runs, record_finished_run
from pobsync_models.specs import HostSpec, host_spec
from pobsync_runner.errors import BackupError, HostBusy
from pobsync_runner.jobkinds import JobResult
from pobsync_runner.lifecycle import StagedSnapshot, commit, interrupt, stage
from pobsync_runner.lock import HostLock
from pobsync_runner.manifest_build import transfer_log_path, write_snapshot_manifest
from pobsync_runner.rsync import RsyncProcess, RsyncResult, rsync_argv
from pobsync_runner.rsync_output import Progress, describe_exit, first_error_line

__all__ = ["BackupError", "HostBusy", "backup_job", "run_backup"]

log = logging.getLogger("pobsync.backup")
Outcome = BackupRun.Outcome
PROGRESS_INTERVAL_SECONDS = 3.0


OUTCOME_STATE = {
    Outcome.SUCCESS: BackupJob.State.SUCCEEDED,
    Outcome.WARNING: BackupJob.State.SUCCEEDED,
    Outcome.FAILED: BackupJob.State.FAILED,
    Outcome.CANCELLED: BackupJob.State.CANCELLED,
}


def backup_job(
    job: BackupJob,
    *,
    stop: threading.Event,
    worker_id: str,
    run_one: Callable[..., BackupRun] | None = None,
) -> JobResult:
    """The runner's executor for backup jobs (pobsync_runner.jobkinds): one run_backup
    (or `run_one`, POBSYNC_RUNNER_EXECUTOR's stand-in) with the job's payload."""
    run = (run_one or run_backup)(
        job.host, job=job, prune=job.prune, stop=stop, worker_id=worker_id
    )
    state = OUTCOME_STATE.get(run.outcome, BackupJob.State.FAILED)
    return JobResult(state, "" if run.outcome == Outcome.SUCCESS else run.message)


def load_spec(host: Host) -> HostSpec:
    """The host's spec, or BackupError saying what to configure first."""
    config = GlobalConfig.load()
    if config is None or not config.backup_root:
        raise BackupError(
            "no global configuration yet: run `pobsync configure-global --backup-root PATH`"
        )
    spec = host_spec(host, config)
    if not spec.sources:
        raise BackupError(
            f"host {host.name} has no sources: run `pobsync configure-host {host.name} "
            "--source PATH`"
        )
    if not spec.backup_root.is_dir():
        raise BackupError(
            f"backup root {spec.backup_root} does not exist: create it or mount the volume"
        )
    return spec


def run_backup(
    host: Host,
    *,
    job: BackupJob | None = None,
    prune: bool = False,
    wait: bool = False,
    stop: threading.Event | None = None,
    worker_id: str = "",
    progress: Callable[[Progress], None] | None = None,
) -> BackupRun:
    """Back up `host` into a new snapshot and return the finished BackupRun.

    Raises BackupError (HostBusy when another backup holds the host's lock and `wait`
    is false) before anything is recorded. `stop` is polled at least once a second;
    when set, rsync's process group is killed and the run ends cancelled. `progress`
    (optional) is called on this thread with each progress update, for a CLI display.
    """
    spec = load_spec(host)
    with HostLock(spec.host_dir, wait=wait, stop=stop) as lock:
        return _locked_backup(host, spec, lock, job, prune, stop, worker_id, progress)


def _locked_backup(
    host: Host,
    spec: HostSpec,
    lock: HostLock,
    job: BackupJob | None,
    prune: bool,
    stop: threading.Event | None,
    worker_id: str,
    progress: Callable[[Progress], None] | None,
) -> BackupRun:
    started = timezone.now()
    # We hold the host's lock, so any run still marked running died with its process.
    fail_running_runs(
        BackupRun.objects.filter(host=host),
        "interrupted: the process running this backup stopped before it finished",
        finished_at=started,
    )
    run = BackupRun.objects.create(
        host=host, job=job, outcome=Outcome.RUNNING, started_at=started, worker_id=worker_id
    )
    try:
        staged = stage(host, spec, started)
    except OSError as exc:
        return _finish(run, Outcome.FAILED, f"cannot create the staging directory: {exc}")
    run.snapshot = staged.record
    run.snapshot_name = staged.record.name
    run.base_snapshot_name = staged.meta.base_name
    run.save(update_fields=["snapshot", "snapshot_name", "base_snapshot_name"])

    transfer_log = transfer_log_path(spec.host_dir, staged.record.name)
    argv = rsync_argv(
        spec,
        staged.staging,
        link_dest=Path(staged.base.path) if staged.base else None,
        seeded=staged.seed is not None,
        transfer_log=transfer_log,
    )
    log.debug("backup %s: %s", host.name, argv)

    def report(p: Progress) -> None:
        _db(
            lambda: BackupRun.objects.filter(pk=run.pk).update(
                progress_bytes=p.bytes,
                progress_files=p.files,
                progress_percent=p.percent,
                progress_updated_at=timezone.now(),
            )
        )
        if progress is not None:
            progress(p)

    proc = RsyncProcess(argv, pass_fds=(lock.fd,) if lock.fd is not None else ())
    try:
        try:
            result = proc.run(
                stop=stop, on_progress=report, progress_interval=PROGRESS_INTERVAL_SECONDS
            )
        except OSError as exc:  # rsync missing or not executable
            interrupt(staged, None, proc.parser.stats, timezone.now())
            return _finish(run, Outcome.FAILED, f"cannot start rsync: {exc}")
        if progress is not None:
            progress(result.progress)
        return _conclude(host, spec, run, staged, result, prune, lock, transfer_log)
    finally:
        transfer_log.unlink(missing_ok=True)


def _conclude(
    host: Host,
    spec: HostSpec,
    run: BackupRun,
    staged: StagedSnapshot,
    result: RsyncResult,
    prune: bool,
    lock: HostLock,
    transfer_log: Path,
) -> BackupRun:
    now = timezone.now()
    code = result.returncode
    _record_stats(run, result)
    tail = "\n".join(result.stderr_tail)
    if result.stopped:
        _db(lambda: interrupt(staged, code, result.stats, now))
        return _finish(
            run,
            Outcome.CANCELLED,
            f"cancelled; partial snapshot {staged.record.name} kept to seed the next run",
            tail,
        )
    if code != 0 and code not in spec.warning_exit_codes:
        _db(lambda: interrupt(staged, code, result.stats, now))
        message = describe_exit(code)
        detail = first_error_line(result.stderr_tail)
        if detail:
            message += f": {detail}"
        if "Host key verification failed" in tail:
            message += f" (check the key, then run `pobsync trust-host {host.name}`)"
        message += f"; partial snapshot {staged.record.name} kept"
        return _finish(run, Outcome.FAILED, message, tail)

    manifest_note = write_snapshot_manifest(staged.staging, staged.base, transfer_log)
    try:
        _db(lambda: commit(staged, code, result.stats, now))
    except OSError as exc:
        return _finish(run, Outcome.FAILED, f"cannot commit the snapshot: {exc}", tail)
    outcome, notes = Outcome.SUCCESS, [manifest_note]
    if code != 0:
        outcome = Outcome.WARNING
        detail = first_error_line(result.stderr_tail)
        notes.append(describe_exit(code) + (f": {detail}" if detail else ""))
    base = staged.base
    if result.stats.files_total == 0 and base is not None and (base.files_total or 0) > 0:
        outcome = Outcome.WARNING
        notes.append(
            f"the source returned no files, but the previous snapshot {base.name} had "
            f"{base.files_total}: is the source mounted?"
        )
    run.snapshot = staged.record
    if prune:
        notes.append(_prune(host, spec, lock, now, run))
    return _finish(run, outcome, "; ".join(n for n in notes if n), tail)


def _prune(host: Host, spec: HostSpec, lock: HostLock, now, run: BackupRun) -> str:
    from pobsync_runner.prune import apply_retention

    try:
        result = apply_retention(host, spec, now=now, lock=lock, exclude_run=run.pk)
    except (BackupError, OSError) as exc:
        return f"prune failed: {exc}"
    return result.summary() if result.deleted else ""


def _record_stats(run: BackupRun, result: RsyncResult) -> None:
    run.rsync_exit_code = result.returncode
    run.files_total = result.stats.files_total
    run.files_transferred = result.stats.files_transferred
    run.bytes_total = result.stats.bytes_total
    run.bytes_transferred = result.stats.bytes_transferred
    run.progress_bytes = result.progress.bytes
    run.progress_files = result.progress.files
    run.progress_percent = result.progress.percent
    run.progress_updated_at = timezone.now()


def _finish(run: BackupRun, outcome: str, message: str, log_tail: str = "") -> BackupRun:
    run.outcome = outcome
    run.finished_at = timezone.now()
    run.message = message
    run.log_tail = log_tail

    def write() -> None:
        # Host row first, then the run: the queue's lock order (host, then job, then run).
        with transaction.atomic():
            record_finished_run(run)
            run.save()

    _db(write)
    return run


def _db(write: Callable[[], object]) -> None:
    """Run a write; reconnect once if the connection died during a long rsync.

    Only outside a transaction: inside one, reconnecting would silently drop work.
    """
    try:
        write()
    except (OperationalError, InterfaceError):
        if connection.in_atomic_block:
            raise
        connection.close()
        write()
