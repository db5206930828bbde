"""The runner process: claim a job, run the engine on it, record the outcome.

Invariants (on top of pobsync_models.queue's):
- The job's outcome is written only through queue.finish()/requeue(), fenced by the
  lease token; a runner whose lease was lost (heartbeat or finish found another token)
  sets the engine's stop event, so rsync's process group is killed, and writes nothing.
- While the engine runs, a heartbeat thread on its own database connection renews the
  lease every POBSYNC_HEARTBEAT_INTERVAL seconds and refreshes the process registry;
  between renewals it reads the job row every POBSYNC_CANCEL_POLL_INTERVAL seconds, so
  a cancel request or a lost lease sets the stop event within seconds. When no
  heartbeat has succeeded for a whole lease TTL, the runner assumes the lease is lost.
- SIGTERM: no new claims; a running job is stopped at once (rsync killed, snapshot left
  partial, which seeds the next run) and requeued without using up an attempt; the
  runner then exits. The bound is the engine's stop poll (1 s) plus the database writes.
- close_old_connections() runs before results are written, so a connection the database
  closed during a multi-hour rsync is replaced rather than failing the write.
"""

from __future__ import annotations

import logging
import threading
import time
from functools import partial
from typing import Any

from django.conf import settings
from django.db import DatabaseError, close_old_connections, connection
from django.utils.module_loading import import_string

from pobsync_models.daemon import Daemon
from pobsync_models.models import BackupJob, WorkerProcess
from pobsync_models.queue import (
    Beat,
    Lease,
    claim,
    finish,
    heartbeat,
    lease_ttl,
    peek,
    reap,
    requeue,
)
from pobsync_runner.backup import backup_job
from pobsync_runner.jobkinds import execute
from pobsync_runner.serving import Service

log = logging.getLogger("pobsync.runner")

State = BackupJob.State
HOST_BUSY_DELAY = 60  # seconds before retrying a job whose host a CLI backup holds


def finished_line(state: str, error: str) -> str:
    """A finished job's outcome and its reason in one line, for the runner's log:
    "succeeded", "succeeded with a warning: ...", "failed: ...", "cancelled: ..."."""
    lines = error.strip().splitlines()
    reason = lines[0][:200] if lines else ""
    if reason and state == State.SUCCEEDED:
        return f"succeeded with a warning: {reason}"
    return outcome_text(state, reason)


def outcome_text(state: str, reason: str) -> str:
    """ "failed: <reason>", or the reason alone when it starts with the state ("cancelled;
    partial snapshot ... kept": said once), or the state alone without a reason."""
    if not reason:
        return state
    if reason.startswith(state):
        return reason
    return f"{state}: {reason}"


def _engine_errors() -> tuple[type[BaseException], type[BaseException]]:
    """(HostBusy, BackupError) from the engine (contract 1)."""
    try:
        from pobsync_runner.backup import BackupError, HostBusy
    except ImportError:  # the engine is not installed in this build

        class _NeverRaisedError(Exception):
            pass

        return _NeverRaisedError, _NeverRaisedError
    return HostBusy, BackupError


class Heartbeat(threading.Thread):
    """Renews one lease until stopped; sets `stop` on a cancel request or lost lease.

    Lease writes happen once per POBSYNC_HEARTBEAT_INTERVAL; in between, every
    POBSYNC_CANCEL_POLL_INTERVAL seconds, a read-only peek() of the job row notices a
    cancel (or a lost lease) within seconds, at the cost of one primary-key SELECT."""

    def __init__(self, lease: Lease, stop: threading.Event, daemon: Daemon) -> None:
        super().__init__(name=f"heartbeat-{lease.job_id}", daemon=True)
        self.lease = lease
        self.stop_engine = stop
        self.owner = daemon
        self.interval = float(settings.POBSYNC_HEARTBEAT_INTERVAL)
        self.poll = min(float(settings.POBSYNC_CANCEL_POLL_INTERVAL), self.interval)
        self.done = threading.Event()
        self.fenced = False
        self.cancel_requested = False

    def run(self) -> None:
        last_ok = time.monotonic()
        next_beat = last_ok + self.interval
        try:
            while not self.done.wait(max(0.0, min(self.poll, next_beat - time.monotonic()))):
                renew = time.monotonic() >= next_beat
                try:
                    if renew:
                        next_beat = time.monotonic() + self.interval
                        beat = heartbeat(self.lease)
                        self.owner.touch()
                        last_ok = time.monotonic()
                    else:
                        beat = peek(self.lease)
                except DatabaseError as exc:
                    # A failed peek is only logged at debug: it recurs every second.
                    say = log.warning if renew else log.debug
                    say("job %s: heartbeat failed: %s", self.lease.job_id, exc)
                    connection.close()  # reconnect on the next beat
                    if time.monotonic() - last_ok > lease_ttl():
                        self._fence("no heartbeat succeeded for a whole lease TTL")
                        return
                    continue
                if beat is Beat.LOST:
                    self._fence("lease lost (reaped or taken over)")
                    return
                if beat is Beat.CANCEL and not self.cancel_requested:
                    self.cancel_requested = True
                    log.info("job %s: cancel requested, stopping rsync", self.lease.job_id)
                    self.stop_engine.set()
        finally:
            connection.close()  # this thread's own connection

    def _fence(self, why: str) -> None:
        self.fenced = True
        log.warning("job %s: %s; stopping rsync, writing nothing", self.lease.job_id, why)
        self.stop_engine.set()

    def finish(self) -> None:
        self.done.set()
        self.join()


class Runner(Daemon):
    kind = WorkerProcess.Kind.RUNNER

    def __init__(
        self,
        *,
        interval: float,
        executor: str | None = None,
        storages: list[str] | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(interval=interval, **kw)
        self.service = Service(storages)  # the storages this runner serves (serving.py)
        run_one = import_string(executor or settings.POBSYNC_RUNNER_EXECUTOR)
        # The backup executor runs POBSYNC_RUNNER_EXECUTOR (the engine's run_backup, or a
        # stand-in in protocol tests); other kinds use pobsync_runner.jobkinds' table.
        self.overrides = {BackupJob.Kind.BACKUP: partial(backup_job, run_one=run_one)}
        self.current_stop: threading.Event | None = None
        self.next_reap = 0.0

    def start(self) -> None:
        self.reap()
        self.refresh_storages(force=True)

    def refresh_storages(self, *, force: bool = False) -> None:
        if self.service.refresh(self.worker_id, force=force):
            self.say(f"serving storages: {', '.join(self.service.served) or '(none)'}")

    def reap(self) -> None:
        """Reap at start and then on idle passes, at most every half lease TTL, so a
        deployment without a scheduler (manual jobs only) still recovers crashed runs."""
        self.next_reap = time.monotonic() + lease_ttl() / 2
        reaped = reap()
        if reaped.total:
            self.say(f"reaped expired leases: {reaped.summary()}")

    def on_stop_request(self) -> None:
        stop = self.current_stop
        if stop is not None:
            stop.set()

    def process_one(self) -> bool:
        if self.stopping.is_set():
            return False
        self.refresh_storages()
        lease = claim(self.worker_id, storages=self.service.ids)
        if lease is None:
            if time.monotonic() >= self.next_reap:
                self.reap()
            scanned = self.service.scan_one()  # space accounting while idle (spacescan)
            if scanned:
                self.say(f"space scan: {scanned} up to date")
            return False
        self.run_job(lease)
        return True

    def run_job(self, lease: Lease) -> None:
        host_busy, backup_error = _engine_errors()
        stop = threading.Event()
        self.current_stop = stop
        self.current_job_id = lease.job_id
        if self.stopping.is_set():  # SIGTERM arrived between claim and here
            stop.set()
        beat = Heartbeat(lease, stop, self)
        beat.start()
        state, error, delay = State.FAILED, "", None
        try:
            job = BackupJob.objects.select_related("host").get(pk=lease.job_id)
            self.touch()
            self.say(f"job {job.pk}: {job.kind} of {job.host.name} (attempt {job.attempts})")
            result = execute(job, stop=stop, worker_id=self.worker_id, overrides=self.overrides)
            state, error = result.state, result.error
        except host_busy as exc:
            state, error, delay = State.QUEUED, f"host busy: {exc}", HOST_BUSY_DELAY
        except backup_error as exc:
            error = str(exc)
            if getattr(exc, "retry_after", None):  # StorageShortError: wait, don't fail
                state, error, delay = State.QUEUED, f"waiting: {exc}", exc.retry_after
        except Exception as exc:
            log.exception("job %s: the engine raised", lease.job_id)
            error = f"internal error: {type(exc).__name__}: {exc}"
        finally:
            beat.finish()
            self.current_stop = None
            self.current_job_id = None
        close_old_connections()
        self._record(lease, beat, state, error, delay)

    def _record(
        self, lease: Lease, beat: Heartbeat, state: str, error: str, delay: int | None
    ) -> None:
        if beat.fenced:
            self.say(f"job {lease.job_id}: lease lost, rsync stopped, no result written")
            return
        if delay is not None:
            written = requeue(lease, delay=delay, error=error)
            verb = f"requeued ({error})"
        elif self.stopping.is_set() and not beat.cancel_requested and state == State.CANCELLED:
            written = requeue(lease, error="runner stopped (SIGTERM) mid-run; requeued")
            verb = "requeued (runner stopping)"
        else:
            if state == State.CANCELLED and beat.cancel_requested:
                error = error or "cancelled by request"
            written = finish(lease, state, error=error)
            verb = finished_line(state, error)
        if written:
            self.say(f"job {lease.job_id}: {verb}")
        else:
            self.say(f"job {lease.job_id}: lease lost before the result was written (fenced)")
