"""run_backup: one backup of one host, from lock to recorded outcome (contract 1).

Outcomes: rsync exit 0 -> success; 24 (vanished files) or a code the host lists ->
warning, snapshot committed; a stop request -> cancelled; anything else -> failed with
the cause (ssh's verdict when it named one, rsync_output.describe_failure) and the tail
of rsync's stderr. A committed snapshot with no regular files whose base had some is a
warning too (an unmounted or emptied source looks like that). Failed and cancelled runs
leave a recorded partial snapshot that seeds the next run, unless they transferred
nothing: then no new partial is left (lifecycle.discard).
"""

from __future__ import annotations

import logging
import os
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

from django.db import DatabaseError, InterfaceError, OperationalError, connection, transaction
from django.db.models import QuerySet
from django.utils import timezone

from pobsync_models.models import BackupJob, BackupRun, GlobalConfig, Host
from pobsync_models.run_status import record_finished_run, settle_dead_runs
from pobsync_models.specs import HostSpec, host_spec
from pobsync_runner.dumps import DumpsOutcome, take_dumps
from pobsync_runner.errors import BackupError, HostBusy, StorageShortError
from pobsync_runner.hooks import run_post, run_pre
from pobsync_runner.jobkinds import JobResult
from pobsync_runner.lifecycle import (
    StagedSnapshot,
    commit,
    discard,
    interrupt,
    remove_partial_dir,
    set_aside_unfinished,
    stage,
)
from pobsync_runner.lock import HostLock
from pobsync_runner.manifest_build import write_snapshot_manifest
from pobsync_runner.pull import Pulled, SettleError, pull, transfer_logs
from pobsync_runner.rsync import RsyncResult
from pobsync_runner.rsync_output import (
    HOST_KEY_CAUSE,
    Progress,
    Stats,
    connection_failure,
    describe_exit,
    describe_failure,
    first_error_line,
)
from pobsync_runner.storage_guard import mount_guard, no_space_message, space_guard

__all__ = ["BackupError", "HostBusy", "StorageShortError", "backup_job", "run_backup"]

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
    force: bool = False,
) -> BackupRun:
    """Back up `host` into a new snapshot and return the finished BackupRun.

    Raises BackupError (HostBusy when another backup holds the host's lock and `wait`
    is false) before anything is recorded. `stop` is polled at least once a second;
    when set, rsync's process group is killed and the run ends cancelled. `progress`
    (optional) is called on this thread with each progress update, for a CLI display.
    The storage guards run first (StorageUnavailableError, StorageShortError unless `force`).
    """
    spec = load_spec(host)
    # -- storage guards (pobsync_runner.storage_guard): nothing is written before them
    mount_guard(spec, host)
    if not force:
        space_guard(spec, host)
    with HostLock(spec.host_dir, wait=wait, stop=stop) as lock:
        if job is None:
            _refuse_beside_queue_job(host)
        return _locked_backup(host, spec, lock, job, prune, stop, worker_id, progress)


def _refuse_beside_queue_job(host: Host) -> None:
    """A CLI backup holds only the disk lock; a restore job holds only the host row
    (pobsync_runner.restore). Checked after taking the lock, so one of the two always
    sees the other."""
    busy = Host.objects.filter(pk=host.pk, running_job__isnull=False).values_list(
        "running_job_id", "running_job__kind"
    )
    for job_id, kind in busy:
        raise HostBusy(
            f"host {host.name} is busy ({kind} job {job_id} is running); try again later"
        )


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
    # We hold the host's lock, so any run still marked running died with its process
    # (one that reached the commit point gets its snapshot's outcome).
    settle_dead_runs(
        BackupRun.objects.filter(host=host),
        "interrupted: the process running this backup stopped before it finished",
        finished_at=started,
    )
    run = BackupRun.objects.create(
        host=host, job=job, outcome=Outcome.RUNNING, started_at=started, worker_id=worker_id
    )
    try:
        return _started_backup(host, spec, lock, run, prune, stop, progress)
    finally:
        try:
            _post_hooks(spec, run)  # once the run started, whatever its outcome
        except Exception:  # never mask the run's own outcome or exception
            log.exception("backup %s: recording the post hooks failed", host.name)


def _started_backup(
    host: Host,
    spec: HostSpec,
    lock: HostLock,
    run: BackupRun,
    prune: bool,
    stop: threading.Event | None,
    progress: Callable[[Progress], None] | None,
) -> BackupRun:
    started = run.started_at
    try:
        staged = stage(host, spec, started)
    except OSError as exc:
        return _finish(run, Outcome.FAILED, f"cannot create the staging directory: {exc}")
    run.snapshot = staged.record
    run.snapshot_name = staged.record.name
    run.base_snapshot_name = staged.meta.base_name
    run.save(update_fields=["snapshot", "snapshot_name", "base_snapshot_name"])
    refused = _pre_hooks(spec, run, staged, stop)
    if refused is not None:
        return refused

    def report(p: Progress) -> None:
        write_progress(BackupRun.objects.filter(pk=run.pk), p)
        if progress is not None:
            progress(p)

    pulled: Pulled | None = None
    try:
        try:
            pulled = pull(
                spec,
                staged,
                lock,
                stop=stop,
                report=report,
                progress_interval=PROGRESS_INTERVAL_SECONDS,
            )
        except (OSError, subprocess.SubprocessError) as exc:  # rsync missing, no namespace
            interrupt(staged, None, Stats(), timezone.now())
            return _finish(run, Outcome.FAILED, f"cannot start rsync: {exc}")
        except SettleError as exc:
            interrupt(staged, None, Stats(), timezone.now())
            return _finish(run, Outcome.FAILED, str(exc))
        result = pulled.result
        if progress is not None:
            progress(result.progress)
        dumps = None
        if not result.stopped and (
            result.returncode == 0 or result.returncode in spec.warning_exit_codes
        ):
            dumps = _take_dumps(spec, run, staged, stop)
            result.stopped = dumps.stopped
        return _conclude(host, spec, run, staged, pulled, prune, lock, dumps)
    finally:
        for transfer_log in transfer_logs(spec, staged):
            transfer_log.unlink(missing_ok=True)
        if pulled is not None and pulled.follower is not None:
            pulled.follower.discard()


def _conclude(
    host: Host,
    spec: HostSpec,
    run: BackupRun,
    staged: StagedSnapshot,
    pulled: Pulled,
    prune: bool,
    lock: HostLock,
    dumps: DumpsOutcome | None = None,
) -> BackupRun:
    result = pulled.result
    now = timezone.now()
    code = result.returncode
    _record_stats(run, result)
    tail = "\n".join(result.stderr_tail)
    if pulled.in_place and (result.stopped or (code != 0 and code not in spec.warning_exit_codes)):
        _set_aside_unfinished(run, staged)
    if result.stopped:
        kept = _keep_partial(run, staged, result, now)
        return _finish(
            run,
            Outcome.CANCELLED,
            "cancelled" + (f"; partial snapshot {kept} kept to seed the next run" if kept else ""),
            tail,
        )
    if code != 0 and code not in spec.warning_exit_codes:
        message = describe_failure(code, result.stderr_tail)
        failure = connection_failure(result.stderr_tail)
        if failure and failure[0] == HOST_KEY_CAUSE:
            message += f" (check the key, then run `pobsync trust-host {host.name}`)"
        if "No space left on device" in tail or "Disk quota exceeded" in tail:
            message = no_space_message(spec, host)
            # The unfinished files' received parts are what filled the disk: kept, they
            # would make the next run fail the same way. The partial snapshot stays.
            _drop_unfinished_files(run, staged)
        kept = _keep_partial(run, staged, result, now)
        message += f"; partial snapshot {kept} kept" if kept else "; nothing was transferred"
        return _finish(run, Outcome.FAILED, message, tail)

    if dumps is not None and dumps.error and not spec.hooks.dumps_may_fail:
        _db(lambda: interrupt(staged, code, result.stats, now))
        message = f"{dumps.error}; partial snapshot {staged.record.name} kept"
        return _finish(run, Outcome.FAILED, message, tail)
    # rsync's regular-file count, when it can vouch that every file is either logged or
    # the base's (carry_over): a clean exit into a fresh directory, no option that skips
    # files.
    vouched = code == 0 and staged.seed is None and not _may_skip_files(spec)
    manifest_note = write_snapshot_manifest(
        staged.staging,
        staged.base,
        pulled.logs,
        regular_files=result.stats.files_total if vouched else None,
        follower=pulled.follower,
    )
    try:
        _db(lambda: commit(staged, code, result.stats, now))
    except OSError as exc:
        return _finish(run, Outcome.FAILED, f"cannot commit the snapshot: {exc}", tail)
    _test_pause_after_commit()
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
    if dumps is not None and dumps.error:  # the host lets dumps fail with a warning
        outcome = Outcome.WARNING
        notes.append(dumps.error)
    run.snapshot = staged.record
    if prune:
        notes.append(_prune(host, spec, lock, now, run))
    return _finish(run, outcome, "; ".join(n for n in notes if n), tail)


def _test_pause_after_commit() -> None:
    """A test hook, never set outside tests (docs/configuration.md): with
    POBSYNC_TEST_PAUSE_AFTER_COMMIT=<path>, create <path> right after the commit point and
    sleep, so tests/queue/test_commit_crash.py can kill -9 the process exactly there."""
    marker = os.environ.get("POBSYNC_TEST_PAUSE_AFTER_COMMIT")
    if marker:
        Path(marker).touch()
        time.sleep(3600)


def _pre_hooks(
    spec: HostSpec, run: BackupRun, staged: StagedSnapshot, stop: threading.Event | None
) -> BackupRun | None:
    """Run pre and remote pre; a finished (failed or cancelled) run when they refuse."""
    results = run_pre(spec, staged.record.name, staged.staging, stop)
    if not results:
        return None
    run.hook_log += "".join(r.log_block() for r in results)
    _db(lambda: BackupRun.objects.filter(pk=run.pk).update(hook_log=run.hook_log))
    failed = next((r for r in results if not r.ok), None)
    if failed is None:
        return None
    if failed.stopped or not spec.hooks.pre_may_fail:
        _db(lambda: interrupt(staged, None, Stats(), timezone.now()))
        outcome = Outcome.CANCELLED if failed.stopped else Outcome.FAILED
        return _finish(run, outcome, f"{failed.error}; rsync not started")
    run._pre_hook_warning = failed.error  # allowed to fail: rsync runs, the run warns
    return None


def _may_skip_files(spec: HostSpec) -> bool:
    """Whether the host's rsync options let rsync leave a listed file out of the
    snapshot without an error (a file beyond --max-size is still counted by --stats)."""
    return any(o.startswith(("--max-size", "--min-size")) for o in spec.rsync_options)


def _take_dumps(
    spec: HostSpec, run: BackupRun, staged: StagedSnapshot, stop: threading.Event | None
) -> DumpsOutcome:
    base = Path(staged.base.path) if staged.base else None
    dumps = take_dumps(spec, staged.staging, base, stall_seconds=spec.rsync_timeout, stop=stop)
    if dumps.results:
        run.dumps = dumps.records()
        run.hook_log += dumps.log
    return dumps


def _post_hooks(spec: HostSpec, run: BackupRun) -> None:
    """Post and remote post; their failure turns a success into a warning."""
    notes = [w for w in [getattr(run, "_pre_hook_warning", "")] if w]
    outcome = run.outcome if run.outcome != Outcome.RUNNING else Outcome.FAILED
    snapshot = run.snapshot
    results = run_post(
        spec,
        run.snapshot_name,
        Path(snapshot.path) if snapshot is not None else spec.host_dir,
        outcome,
        run.rsync_exit_code,
    )
    notes += [r.error for r in results if not r.ok]
    if not results and not notes:
        return
    run.hook_log += "".join(r.log_block() for r in results)
    if notes and run.outcome in (Outcome.SUCCESS, Outcome.WARNING):
        run.outcome = Outcome.WARNING
    if notes:
        run.message = "; ".join(n for n in [run.message, *notes] if n)

    def write() -> None:
        with transaction.atomic():
            record_finished_run(run)
            BackupRun.objects.filter(pk=run.pk).update(
                outcome=run.outcome, message=run.message, hook_log=run.hook_log
            )

    _db(write)


def _prune(host: Host, spec: HostSpec, lock: HostLock, now, run: BackupRun) -> str:
    from pobsync_runner.prune import apply_retention

    try:
        result = apply_retention(host, spec, now=now, lock=lock, exclude_run=run.pk)
    except (BackupError, OSError) as exc:
        return f"prune failed: {exc}"
    return result.summary() if result.deleted else ""


def _set_aside_unfinished(run: BackupRun, staged: StagedSnapshot) -> None:
    try:
        moved = set_aside_unfinished(staged.staging, run.started_at)
    except OSError as exc:
        log.warning("run %s: could not set the unfinished files aside: %s", run.pk, exc)
    else:
        if moved:
            log.debug("run %s: %d unfinished file(s) set aside to be continued", run.pk, moved)


def _drop_unfinished_files(run: BackupRun, staged: StagedSnapshot) -> None:
    try:
        remove_partial_dir(staged.staging)
    except OSError as exc:
        log.warning("run %s: could not remove the unfinished files: %s", run.pk, exc)


def _keep_partial(run: BackupRun, staged: StagedSnapshot, result: RsyncResult, now) -> str | None:
    """Record the staging directory as a partial (the name kept), or, when the run
    transferred nothing, leave no trace of it (discard) and return None: an unreachable
    host retried every hour must not pile up empty partials."""
    untouched = connection_failure(result.stderr_tail) is not None
    discarded = False
    try:
        discarded = discard(staged, remote_untouched=untouched)
    except (OSError, DatabaseError):
        log.warning("run %s: could not discard the empty staging directory", run.pk)
    if not discarded:
        _db(lambda: interrupt(staged, result.returncode, result.stats, now))
        return staged.record.name
    run.snapshot = None
    run.snapshot_name = ""
    return None


def _record_stats(run: BackupRun, result: RsyncResult) -> None:
    run.rsync_exit_code = result.returncode
    run.files_total = result.stats.files_total
    run.files_transferred = result.stats.files_transferred
    run.bytes_total = result.stats.bytes_total
    run.bytes_transferred = result.stats.bytes_transferred
    # With --link-dest every file rsync transferred is a new inode; linked ones are not.
    run.files_added = result.stats.files_transferred
    run.bytes_added = result.stats.bytes_transferred
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


def write_progress(rows: QuerySet, p: Progress) -> None:
    """Store a progress update on a running job's row (a BackupRun, a RestoreRequest):
    the fields the dashboard, the API and a waiting CLI read."""
    _db(
        lambda: rows.update(
            progress_bytes=p.bytes,
            progress_files=p.files,
            progress_percent=p.percent,
            progress_updated_at=timezone.now(),
        )
    )


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
