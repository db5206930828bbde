"""run_verify: one verification of one host's snapshots, from lock to recorded verdict.

Holds the host's lock for the whole run (the same flock as backup and retention), so a
verification never runs beside a backup or a prune of the host, whoever started either.
Records a VerifyRun, each snapshot's integrity (`verified`, `corrupt`; `unverified` until
a run has read all of it), and one `snapshot_corrupt` event per damaged file. A snapshot
marked corrupt is never the base of the next backup (lifecycle.newest_complete).
"""

from __future__ import annotations

import hashlib
import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from django.db import transaction
from django.utils import timezone

from pobsync_models.events import record_event
from pobsync_models.models import (
    BackupJob,
    Event,
    GlobalConfig,
    Host,
    SnapshotRecord,
    VerifyRun,
)
from pobsync_runner.backup import _db, load_spec
from pobsync_runner.errors import BackupError
from pobsync_runner.integrity import (
    Report,
    SnapshotResult,
    Target,
    snapshots_sharing,
    verify,
)
from pobsync_runner.jobkinds import JobResult
from pobsync_runner.lock import HostLock
from pobsync_runner.safe_read import Stopped

log = logging.getLogger("pobsync.verify")
Integrity = SnapshotRecord.Integrity
Outcome = VerifyRun.Outcome
MAX_EVENTS = 100  # per run: a deleted directory must not flood the events table
MAX_DETAILS = 200


@dataclass(frozen=True)
class VerifyRequest:
    """What to verify. `outdated_days`: snapshots not fully read for that long (or never)
    are read in full, the others sampled at `sample_percent` (the scheduled rule); without
    it, `sample_percent` None reads everything selected."""

    snapshot: str | None = None
    sample_percent: float | None = None
    since_days: int | None = None
    outdated_days: int | None = None
    max_rate: int | None = None  # bytes per second


def select_targets(
    host: Host, request: VerifyRequest, now: datetime
) -> tuple[list[SnapshotRecord], list[Target], list[Target]]:
    """(records, targets, others): the snapshots to verify and the rest of the host's
    complete snapshots (named when they share a damaged inode)."""
    complete = list(host.snapshots.filter(state=SnapshotRecord.State.COMPLETE).order_by("name"))
    chosen = complete
    if request.snapshot is not None:
        chosen = [r for r in complete if r.name == request.snapshot]
        if not chosen:
            raise BackupError(
                f"host {host.name} has no complete snapshot {request.snapshot!r} "
                f"(see `pobsync retention {host.name}` for the list)"
            )
    if request.since_days is not None:
        cutoff = now - timedelta(days=request.since_days)
        chosen = [r for r in chosen if r.started_at is None or r.started_at >= cutoff]
    chosen = [r for r in chosen if Path(r.path).is_dir()]
    targets = []
    for record in chosen:
        full = request.sample_percent is None
        if request.outdated_days is not None:
            cutoff = now - timedelta(days=request.outdated_days)
            full = record.fully_verified_at is None or record.fully_verified_at < cutoff
        targets.append(Target(record.name, Path(record.path), full))
    names = {r.name for r in chosen}
    others = [Target(r.name, Path(r.path)) for r in complete if r.name not in names]
    return chosen, targets, others


def run_verify(
    host: Host,
    request: VerifyRequest,
    *,
    job: BackupJob | None = None,
    wait: bool = False,
    stop: threading.Event | None = None,
    worker_id: str = "",
    now: datetime | None = None,
) -> tuple[VerifyRun, Report | None]:
    """Verify and record. Raises BackupError (HostBusy when the host is locked and `wait`
    is false) before anything is recorded."""
    spec = load_spec(host)
    with HostLock(spec.host_dir, wait=wait, stop=stop, purpose="verify"):
        started = now or timezone.now()
        records, targets, others = select_targets(host, request, started)
        sample = (request.sample_percent if request.sample_percent is not None else 100) / 100
        run = VerifyRun.objects.create(
            host=host,
            job=job,
            started_at=started,
            worker_id=worker_id,
            snapshots=len(targets),
            sample_percent=request.sample_percent,
        )
        try:
            report = verify(targets, sample=sample, max_rate=request.max_rate, stop=stop)
        except Stopped:
            return _close(run, Outcome.CANCELLED, "cancelled"), None
        except OSError as exc:
            return _close(run, Outcome.FAILED, f"verification stopped: {exc}"), None
        _expand(report, others)
        _record(host, run, records, report, timezone.now())
        return run, report


def scheduled_request(config: GlobalConfig) -> VerifyRequest:
    """The scheduled rule: snapshots not read in full for `verify_outdated_days` are read
    in full (so every inode is re-read at least that often), the rest sampled."""
    return VerifyRequest(
        sample_percent=config.verify_sample_percent,
        outdated_days=config.verify_outdated_days,
    )


VERIFY_STATE = {
    Outcome.OK: BackupJob.State.SUCCEEDED,
    Outcome.PROBLEMS: BackupJob.State.FAILED,
    Outcome.FAILED: BackupJob.State.FAILED,
    Outcome.CANCELLED: BackupJob.State.CANCELLED,
}


def verify_job(job: BackupJob, *, stop: threading.Event, worker_id: str) -> JobResult:
    """The runner's executor for verify jobs (pobsync_runner.jobkinds). A run that found
    damage ends the job failed with the summary, so the queue page shows it."""
    config = GlobalConfig.load()
    if config is None:
        raise BackupError("no global configuration yet")
    run, _ = run_verify(
        job.host, scheduled_request(config), job=job, stop=stop, worker_id=worker_id
    )
    state = VERIFY_STATE.get(run.outcome, BackupJob.State.FAILED)
    return JobResult(state, "" if run.outcome == Outcome.OK else run.message)


def _expand(report: Report, others: list[Target]) -> None:
    """Name the snapshots outside this run that share a damaged inode."""
    if not others:
        return
    for finding in report.findings:
        if finding.inode is None:
            continue
        extra = snapshots_sharing(finding.raw_path, finding.inode, others)
        for name in extra:
            finding.snapshots.append(name)
            result = report.snapshots.setdefault(name, SnapshotResult(name))
            result.read_all = False
            result.damaged(finding.path)


def _record(
    host: Host, run: VerifyRun, records: list[SnapshotRecord], report: Report, now: datetime
) -> None:
    by_name = {r.name: r for r in records}
    extra = [n for n in report.snapshots if n not in by_name]
    if extra:
        by_name.update({r.name: r for r in host.snapshots.filter(name__in=extra)})

    def write() -> None:
        with transaction.atomic():
            for name, result in report.snapshots.items():
                record = by_name.get(name)
                if record is None:
                    continue
                fields = {}
                if name not in extra:  # stamped with the start: reads began then
                    fields["verified_at"] = run.started_at
                    if result.read_all:
                        fields["fully_verified_at"] = run.started_at
                if result.problems:
                    paths = list(dict.fromkeys(record.corrupt_paths + result.problem_paths))
                    fields.update(
                        integrity=Integrity.CORRUPT,
                        corrupt_files=max(record.corrupt_files, result.problems)
                        if name in extra
                        else result.problems,
                        corrupt_paths=paths[:50] if name in extra else result.problem_paths,
                    )
                elif result.read_all and name not in extra:
                    fields.update(integrity=Integrity.VERIFIED, corrupt_files=0, corrupt_paths=[])
                if fields:
                    SnapshotRecord.objects.filter(pk=record.pk).update(**fields)
            for finding in report.findings[:MAX_EVENTS]:
                _event(host, finding, now)
            run.outcome = Outcome.PROBLEMS if report.problems else Outcome.OK
            run.finished_at = now
            run.files_checked = report.files_checked
            run.files_read = report.files_read
            run.bytes_read = report.bytes_read
            run.problems = report.problems
            run.message = summary(report)
            run.details = [
                {"kind": f.kind, "path": f.path, "detail": f.detail, "snapshots": f.snapshots}
                for f in report.findings[:MAX_DETAILS]
            ]
            run.save()

    _db(write)


def _event(host: Host, finding, now: datetime) -> None:
    digest = hashlib.sha256(
        f"{finding.kind}\0{finding.path}\0{finding.detail}".encode()
    ).hexdigest()[:24]
    first = finding.snapshots[0] if finding.snapshots else ""
    where = f"{finding.path} " if finding.path else ""
    record_event(
        Event.Kind.SNAPSHOT_CORRUPT,
        f"snapshot-corrupt:{host.pk}:{first}:{digest}",
        f"{host.name}: {finding.kind} {where}({finding.detail}) in {', '.join(finding.snapshots)}",
        host=host,
        details={
            "kind": finding.kind,
            "path": finding.path,
            "detail": finding.detail,
            "snapshots": finding.snapshots,
        },
        at=now,
    )


def summary(report: Report) -> str:
    mb = report.bytes_read / 1e6
    text = (
        f"{len(report.snapshots)} snapshots, {report.files_checked} files checked, "
        f"{report.files_read} read ({mb:.1f} MB) in {report.seconds:.1f} s"
    )
    if report.problems:
        text += f"; {report.problems} problems"
    return text


def _close(run: VerifyRun, outcome: str, message: str) -> VerifyRun:
    run.outcome = outcome
    run.finished_at = timezone.now()
    run.message = message
    _db(run.save)
    return run


def corrupt_warning(record: SnapshotRecord) -> str:
    """What a restore from `record` must say before it starts: "" when verification knows
    of no damage, else the damaged files (the first 50 are on the record)."""
    if record.integrity != Integrity.CORRUPT:
        return ""
    paths = record.corrupt_paths or []
    more = record.corrupt_files - len(paths)
    listed = ", ".join(paths) + (f" and {more} more" if more > 0 else "")
    when = record.verified_at.strftime("%Y-%m-%d %H:%M UTC") if record.verified_at else "?"
    return (
        f"snapshot {record.name} has {record.corrupt_files} known-corrupt files "
        f"(verification of {when}): {listed}; restored copies of them will be damaged"
    )
