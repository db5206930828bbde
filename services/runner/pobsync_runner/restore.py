"""restore_job: the runner's executor for restore jobs (pobsync_runner.jobkinds).

One restore = one rsync from the snapshot (local) to a directory on this machine or,
over ssh with the host's restore key, to the target host. What it keeps and never does:
* keeps the host's full paths under the target (--relative from <snapshot>/./<path>),
  owners by number, modes, times, symlinks as links, hard links within the restored
  set, sparse files, and ACLs/xattrs when the backup kept them;
* never deletes on the target (no --delete of any kind; the restore key's rrsync line
  forbids it too), never overwrites an existing file unless the request says
  overwrite (--ignore-existing), writes nothing on a dry run (--dry-run, the itemized
  changes are recorded instead), never copies pobsync's metadata files;
* re-checks the request (snapshot state, paths reached without symlinks, target)
  before rsync starts, and records the outcome, figures and rsync's stderr tail on
  the RestoreRequest, which is the restore's record.

Concurrency: the queue's per-host mutex keeps backup and restore jobs of a host apart.
A CLI backup takes only the host's disk lock, so a restore first checks that lock is
free (HostBusy: the job is requeued); a CLI backup started afterwards sees the
restore in the host row and refuses (pobsync_runner.backup).
"""

from __future__ import annotations

import logging
import threading
from collections import deque

from django.utils import timezone

from pobsync_models.models import BackupJob, RestoreRequest
from pobsync_models.restores import RestoreError, RestoreSpec, restore_spec
from pobsync_models.snapfs import METADATA_PREFIX
from pobsync_runner.backup import _db, write_progress  # reconnect-once writes
from pobsync_runner.jobkinds import JobResult
from pobsync_runner.lock import HostLock
from pobsync_runner.rsync import (
    RsyncProcess,
    RsyncResult,
    finished_progress,
    progress_args,
    progress_on_signal,
)
from pobsync_runner.rsync_output import OutputParser, Progress, describe_exit, first_error_line
from pobsync_runner.ssh import remote_prefix, rsync_rsh

log = logging.getLogger("pobsync.restore")
Outcome = RestoreRequest.Outcome
State = BackupJob.State
PROGRESS_INTERVAL_SECONDS = 2.0
CHANGE_MARK = "pobsync-change: "  # prefixes rsync's itemized lines on stdout
MAX_CHANGES = 5000  # itemized lines kept on the record (the newest)

JOB_STATE = {
    Outcome.SUCCESS: State.SUCCEEDED,
    Outcome.FAILED: State.FAILED,
    Outcome.CANCELLED: State.CANCELLED,
}


def restore_argv(spec: RestoreSpec, *, progress_by_signal: bool = False) -> list[str]:
    """The rsync command of one restore (an argv list, never a shell string).
    progress_by_signal: RsyncProcess asks for progress (a dry run has none)."""
    argv = [
        "rsync",
        "--archive",
        "--hard-links",
        "--sparse",
        "--numeric-ids",
        "--relative",
        f"--timeout={spec.rsync_timeout}",
        *([] if spec.dry_run else progress_args(progress_by_signal)),
        "--stats",
        f"--exclude=/{METADATA_PREFIX}*",
    ]
    if spec.acls:
        argv.append("--acls")
    if spec.xattrs:
        argv.append("--xattrs")
    if not spec.overwrite:
        argv.append("--ignore-existing")
    if spec.dry_run:
        argv += ["--dry-run", f"--out-format={CHANGE_MARK}%i %n%L"]
    # "<snapshot>/./etc/nginx": --relative keeps what follows "/./" under the target.
    argv += [f"{spec.snapshot_root}/.{path}" for path in spec.paths]
    if spec.ssh is not None:
        argv[1:1] = ["--rsh", rsync_rsh(spec.ssh)]
        argv.append(f"{remote_prefix(spec.ssh)}{spec.remote_dest}/")
    else:
        # Nanosecond mtimes for symlinks too (see rsync_argv). Local copies only: a
        # push hands it to the remote as "-@-1", which rrsync refuses.
        argv[1:1] = ["--modify-window=-1"]
        argv.append(f"{spec.target_dir}/")
    return argv


class ChangeParser(OutputParser):
    """rsync's stdout parser that also keeps the itemized changes of a dry run."""

    def __init__(self) -> None:
        super().__init__()
        self.changes: deque[str] = deque(maxlen=MAX_CHANGES)

    def take(self, line: str) -> None:
        if line.startswith(CHANGE_MARK):
            self.changes.append(line[len(CHANGE_MARK) :])
            return
        super().take(line)


def restore_job(job: BackupJob, *, stop: threading.Event, worker_id: str) -> JobResult:
    """Run the restore that `job` carries; see the module docstring for the contract."""
    request = RestoreRequest.objects.select_related(
        "host", "snapshot", "snapshot__host", "target_host"
    ).get(pk=job.restore_id)
    try:
        spec = restore_spec(request)
    except RestoreError as exc:
        return _finish(request, Outcome.FAILED, str(exc))
    # Raises HostBusy (the runner requeues the job) while a CLI backup holds the disk.
    with HostLock(spec.host_dir, purpose="restore"):
        pass
    _start(request, worker_id)
    return _run(request, spec, stop)


def _start(request: RestoreRequest, worker_id: str) -> None:
    request.outcome = Outcome.RUNNING
    request.started_at = timezone.now()
    request.worker_id = worker_id
    request.finished_at = None
    request.message = request.log_tail = request.changes = ""
    request.save()


def _run(request: RestoreRequest, spec: RestoreSpec, stop: threading.Event) -> JobResult:
    if spec.target_dir is not None:
        try:
            spec.target_dir.mkdir(mode=0o700, exist_ok=True)
        except OSError as exc:
            return _finish(request, Outcome.FAILED, f"cannot create {spec.target_dir}: {exc}")
    by_signal = progress_on_signal() and not spec.dry_run
    argv = restore_argv(spec, progress_by_signal=by_signal)
    log.debug("restore %s: %s", request.pk, argv)

    def report(p: Progress) -> None:
        write_progress(RestoreRequest.objects.filter(pk=request.pk), p)

    proc = RsyncProcess(argv, progress_by_signal=by_signal)
    proc.parser = ChangeParser()
    try:
        result = proc.run(
            stop=stop, on_progress=report, progress_interval=PROGRESS_INTERVAL_SECONDS
        )
    except OSError as exc:
        return _finish(request, Outcome.FAILED, f"cannot start rsync: {exc}")
    return _conclude(request, result, proc.parser.changes)


def _conclude(request: RestoreRequest, result: RsyncResult, changes: deque[str]) -> JobResult:
    request.rsync_exit_code = result.returncode
    request.files_total = result.stats.files_total
    request.files_transferred = result.stats.files_transferred
    request.bytes_total = result.stats.bytes_total
    request.bytes_transferred = result.stats.bytes_transferred
    request.progress_bytes = result.progress.bytes
    request.progress_files = result.progress.files
    request.progress_percent = result.progress.percent
    request.changes = "\n".join(changes)
    tail = "\n".join(result.stderr_tail)
    if result.stopped:
        return _finish(
            request, Outcome.CANCELLED, "cancelled; the target may be half restored", tail
        )
    if result.returncode != 0:
        message = describe_exit(result.returncode)
        detail = first_error_line(result.stderr_tail)
        if detail:
            message += f": {detail}"
        if "read-only" in tail or "rrsync" in tail:
            message += " (is the restore key's authorized_keys line installed? see docs/restore.md)"
        return _finish(request, Outcome.FAILED, message, tail)
    if not request.dry_run:
        done = finished_progress(result.stats)
        request.progress_bytes, request.progress_files = done.bytes, done.files
        request.progress_percent = done.percent
    note = f"dry run: {len(changes)} change(s), nothing written" if request.dry_run else ""
    return _finish(request, Outcome.SUCCESS, note, tail)


def _finish(request: RestoreRequest, outcome: str, message: str, tail: str = "") -> JobResult:
    request.outcome = outcome
    request.finished_at = timezone.now()
    request.started_at = request.started_at or request.finished_at
    request.message = message
    request.log_tail = tail
    _db(request.save)
    return JobResult(JOB_STATE[outcome], "" if outcome == Outcome.SUCCESS else message)
