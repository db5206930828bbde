"""The backup's rsync step: one `--relative` rsync for all sources, or, where the run
allows it, one rsync per source pulled beside its base (pobsync_runner.beside_base).

Either way the caller gets one RsyncResult (stats summed, progress counted across the
rsyncs, the first exit code that is not 0) and the transfer logs the manifest is built
from, each with the prefix its names have inside the snapshot.
"""

from __future__ import annotations

import logging
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path

from pobsync_models.specs import HostSpec
from pobsync_runner import beside_base
from pobsync_runner.lifecycle import StagedSnapshot
from pobsync_runner.lock import HostLock
from pobsync_runner.rsync import (
    STDERR_TAIL_LINES,
    RsyncProcess,
    RsyncResult,
    backup_progress_by_signal,
    finished_progress,
    receive_in_place,
    rsync_argv,
)
from pobsync_runner.rsync_output import Progress, Stats
from pobsync_runner.transfer_log import LogFollower, transfer_log_path

log = logging.getLogger("pobsync.pull")


class _NamespaceRefusedError(Exception):
    """The first rsync beside the base could not start in its mount namespace."""


class SettleError(Exception):
    """The files were pulled but could not all be moved into the staging directory."""


@dataclass
class Pulled:
    result: RsyncResult
    logs: list[tuple[Path, bytes]]  # (rsync's --log-file, its names' prefix)
    follower: LogFollower | None = None  # a full backup's log, read while rsync ran
    in_place: bool = False  # rsync wrote each file at its name (rsync.receive_in_place)


def pull(
    spec: HostSpec,
    staged: StagedSnapshot,
    lock: HostLock,
    *,
    stop: threading.Event | None,
    report: Callable[[Progress], None],
    progress_interval: float,
) -> Pulled:
    """Run the rsync(s) of one backup into `staged`. OSError when rsync cannot start.
    Its transfer logs are among transfer_logs(spec, staged), which the caller removes."""
    base_dir = Path(staged.base.path) if staged.base else None
    pulls = beside_base.plan(spec, base_dir, seeded=staged.seed is not None)
    if pulls is not None and base_dir is not None and beside_base.open_bases(base_dir, pulls):
        try:
            return _beside(spec, staged, lock, pulls, base_dir, stop, report, progress_interval)
        except _NamespaceRefusedError as exc:  # nothing was pulled: the other way, this once
            log.warning("%s: rsync could not start beside its base (%s)", spec.name, exc)
        finally:
            beside_base.close_bases(pulls)
    return _relative(spec, staged, lock, base_dir, stop, report, progress_interval)


def transfer_logs(spec: HostSpec, staged: StagedSnapshot) -> list[Path]:
    """Where a run's rsync(s) write their transfer logs: the one --relative rsync's, then
    one per source beside the base."""
    name = staged.record.name
    return [transfer_log_path(spec.host_dir, name)] + [
        transfer_log_path(spec.host_dir, f"{name}.{i}") for i in range(len(spec.sources))
    ]


def _relative(
    spec: HostSpec,
    staged: StagedSnapshot,
    lock: HostLock,
    base_dir: Path | None,
    stop: threading.Event | None,
    report: Callable[[Progress], None],
    progress_interval: float,
) -> Pulled:
    """All sources in one rsync, each at its full path (`--relative`)."""
    transfer_log = transfer_logs(spec, staged)[0]
    by_signal = backup_progress_by_signal(base_dir)
    in_place = receive_in_place(spec, base_dir, staged.seed is not None)
    # A full backup logs every file: the lines come down rsync's stdout (cheaper for
    # rsync than a log file it appends and flushes a line at a time) into the same log.
    full = base_dir is None and staged.seed is None
    argv = rsync_argv(
        spec,
        staged.staging,
        link_dest=base_dir,
        seeded=staged.seed is not None,
        transfer_log=transfer_log,
        progress_by_signal=by_signal,
        in_place=in_place,
        log_on_stdout=full,
    )
    proc = RsyncProcess(
        argv,
        pass_fds=_lock_fds(lock),
        progress_by_signal=by_signal,
        transfer_log=transfer_log if full else None,
    )
    # A full backup logs every file: its manifest's work per file is done beside rsync.
    follower = None
    if full:
        follower = LogFollower(transfer_log, staged.staging)
        follower.start()
    try:
        result = proc.run(stop=stop, on_progress=report, progress_interval=progress_interval)
    finally:
        if follower is not None:
            follower.finish()
    return Pulled(_settled_progress(result), [(transfer_log, b"")], follower, in_place)


def _settled_progress(result: RsyncResult) -> RsyncResult:
    """A successful run ends at its finished figures (several rsyncs: the last one's
    percent is not the run's)."""
    if result.returncode == 0 and not result.stopped:
        result.progress = finished_progress(result.stats)
    return result


def _lock_fds(lock: HostLock) -> tuple[int, ...]:
    return (lock.fd,) if lock.fd is not None else ()


def _beside(
    spec: HostSpec,
    staged: StagedSnapshot,
    lock: HostLock,
    pulls: list[beside_base.SourcePull],
    base_dir: Path,
    stop: threading.Event | None,
    report: Callable[[Progress], None],
    progress_interval: float,
) -> Pulled:
    beside_base.start(spec.host_dir, staged.staging, base_dir, pulls)
    results: list[RsyncResult] = []
    logs: list[tuple[Path, bytes]] = []
    done = Progress()
    try:
        for one, transfer_log in zip(pulls, transfer_logs(spec, staged)[1:], strict=True):
            logs.append((transfer_log, one.prefix()))
            argv = rsync_argv(
                spec,
                Path(beside_base.MOUNTPOINT) / one.incoming,
                link_dest=Path(beside_base.MOUNTPOINT),
                transfer_log=transfer_log,
                pull=one,
            )
            proc = RsyncProcess(argv, pass_fds=_lock_fds(lock), bind=(one.base_path, one.base_fd))

            def counted(p: Progress, done: Progress = done) -> None:
                report(Progress(done.bytes + p.bytes, p.percent, done.files + p.files))

            try:
                result = proc.run(
                    stop=stop, on_progress=counted, progress_interval=progress_interval
                )
            except subprocess.SubprocessError as exc:  # raised in the child before exec
                if results:
                    raise
                raise _NamespaceRefusedError(str(exc)) from exc
            results.append(result)
            done = Progress(
                done.bytes + result.progress.bytes,
                result.progress.percent,
                done.files + result.progress.files,
            )
            if result.stopped or result.returncode not in (0, *spec.warning_exit_codes):
                break
    finally:
        _settle_all(spec.host_dir, staged.staging, pulls)
    return Pulled(_settled_progress(_combine(results, done)), logs)


def _settle_all(host_dir: Path, staging: Path, pulls: list[beside_base.SourcePull]) -> None:
    """Every incoming tree into the staging directory (also those of sources whose rsync
    never ran: they are empty); the journal goes only when all of them went."""
    failed: OSError | None = None
    for one in pulls:
        try:
            beside_base.settle(staging, one)
        except OSError as exc:
            log.warning("%s: moving %s into %s failed: %s", host_dir, one.incoming, staging, exc)
            failed = failed or exc
    if failed is not None:  # the journal stays: the next holder of the lock finishes
        raise SettleError(
            f"could not move the pulled files into {staging.name} ({failed.strerror or failed}); "
            "the next backup of this host finishes it"
        )
    beside_base.finish(host_dir)


def _combine(results: list[RsyncResult], progress: Progress) -> RsyncResult:
    """One result for the run: stats summed, the first exit code that is not 0."""
    stats = Stats()
    for f in fields(Stats):
        values = [getattr(r.stats, f.name) for r in results]
        if values and all(v is not None for v in values):
            setattr(stats, f.name, sum(values))
    code = next((r.returncode for r in results if r.returncode != 0), 0)
    tail = [line for r in results for line in r.stderr_tail][-STDERR_TAIL_LINES:]
    return RsyncResult(
        returncode=code,
        stats=stats,
        stderr_tail=tail,
        stopped=any(r.stopped for r in results),
        progress=progress,
    )
