"""The SQL job queue's protocol: enqueue, claim, heartbeat, finish, requeue, cancel, reap.

Nothing else changes BackupJob.state or Host.running_job. The same ORM code runs on
SQLite and MariaDB (docs/queue.md, design notes section 3).

Invariants:

I1  Host.running_job is the per-host mutex. A job is `running` exactly when its host row
    has running_job = job and lease_token = the job's lease_token; both rows change in
    one transaction (claim, finish, requeue, reap), so at most one job per host runs.
I2  Every write by a lease holder (heartbeat, finish, requeue) is conditioned on its
    token. A zero rowcount means the lease was lost (reaped, stolen): the holder is
    fenced and must stop rsync and write nothing (the runner does both).
I3  Lock order is always host row, then job row. Claim takes the host row first
    (SELECT ... FOR UPDATE SKIP LOCKED where supported, then a conditional UPDATE), then
    the storage row when the host's storage is capped (storages.cap_reached), then the
    job row; finish, requeue and reap update host then job (reap then the job's
    BackupRun, a row no claim locks).
I4  Lease times come from the database clock (Now()), never from a runner's clock.
I5  Transient lock errors (MariaDB 1213 deadlock, 1205 lock wait timeout, SQLite
    "database is locked") are retried with jittered exponential backoff, each retry a
    fresh transaction; they never surface as job failures.
"""

from __future__ import annotations

import logging
import random
import secrets
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import TypeVar

from django.conf import settings
from django.db import OperationalError, connection, transaction
from django.db.models import F
from django.db.models.functions import Now
from django.utils import timezone

from pobsync_models.events import record_event
from pobsync_models.models import BackupJob, BackupRun, Event, GlobalConfig, Host
from pobsync_models.run_status import has_committed_run, settle_dead_runs
from pobsync_models.storages import (
    ClaimScope,
    cap_reached,
    claim_scope,
    on_storages,
)

log = logging.getLogger("pobsync.queue")

State = BackupJob.State
PRIORITY_MANUAL = 2  # a job asked for by a person goes before the nightly schedule
PRIORITY_SCHEDULE = 5
CLAIM_BATCH = 20  # candidates read per claim round
CLAIM_ROUNDS = 3  # re-read candidates when every one of a batch was taken by others

RUNNER_LOST = "runner lost: lease expired"  # the message on a reaped job's BackupRun
# The job's error when its runner died after the snapshot's commit point.
COMMITTED_RUNNER_LOST = "runner lost after the snapshot was committed: recorded as done"
RETRYABLE_MYSQL_CODES = frozenset({1205, 1213})
T = TypeVar("T")


class _LostRaceError(Exception):
    """Raised inside a transaction to roll it back: another process won the row."""


@dataclass(frozen=True)
class Lease:
    """What a runner holds while it runs a job; every later write is fenced by token."""

    job_id: int
    host_id: int
    token: str
    worker_id: str


class Beat(Enum):
    OK = "ok"
    CANCEL = "cancel"  # the lease is ours but somebody asked to cancel: stop rsync
    LOST = "lost"  # fenced: stop rsync, write nothing


@dataclass(frozen=True)
class ReapResult:
    requeued: int = 0
    failed: int = 0
    hosts_repaired: int = 0
    recovered: int = 0  # runner died after the commit point: succeeded, not run again

    @property
    def total(self) -> int:
        return self.requeued + self.failed + self.hosts_repaired + self.recovered

    def summary(self) -> str:
        text = f"{self.requeued} requeued, {self.failed} failed"
        if self.recovered:
            text += f", {self.recovered} recovered (snapshot committed, recorded as done)"
        if self.hosts_repaired:
            text += f", {self.hosts_repaired} hosts repaired"
        return text


def lease_ttl() -> int:
    return int(settings.POBSYNC_LEASE_TTL)


def is_retryable(exc: OperationalError) -> bool:
    code = exc.args[0] if exc.args else None
    if code in RETRYABLE_MYSQL_CODES:
        return True
    text = str(exc).lower()
    return "database is locked" in text or "database table is locked" in text


def retrying(fn: Callable[[], T], *, attempts: int = 10, base_delay: float = 0.01) -> T:
    """Run fn (which opens its own transaction) and retry it on transient lock errors.

    Inside an outer transaction a retry cannot help (MariaDB rolled the whole
    transaction back), so the error is raised at once there.
    """
    for attempt in range(attempts):
        try:
            return fn()
        except OperationalError as exc:
            if not is_retryable(exc) or attempt == attempts - 1 or connection.in_atomic_block:
                raise
            delay = min(1.0, base_delay * 2**attempt) * (0.5 + random.random())  # noqa: S311
            log.debug("transient lock error (%s), retry %d in %.3fs", exc, attempt + 1, delay)
            time.sleep(delay)
    raise AssertionError("unreachable")


def _expiry(ttl: int):
    return Now() + timedelta(seconds=ttl)


# -- enqueue -----------------------------------------------------------------------


def runnable_now() -> datetime:
    """The current time as a run_after that claim(), which compares with the database
    clock, sees as due at once. SQLite's clock has whole milliseconds and compares as
    text: "…01.123456" (or "…01.123000") sorts after its "…01.123", so a job enqueued in
    the same millisecond would be invisible; one millisecond earlier never is."""
    return timezone.now() - timedelta(milliseconds=1)


def enqueue(
    host: Host,
    *,
    prune: bool = False,
    trigger: str = BackupJob.Trigger.MANUAL,
    priority: int | None = None,
    run_after=None,
    kind: str = BackupJob.Kind.BACKUP,
    **payload: object,
) -> BackupJob:
    """A queued job for host, runnable from run_after (default now). Scheduled slots are
    enqueued by the scheduler (pobsync_scheduler.tick), which adds the dedupe key.

    `kind` and `payload` (the kind's typed fields, e.g. restore=<RestoreRequest>) are
    stored as given; the queue never interprets them. The job carries the host's storage
    (BackupJob.save), which the claim's storage filter reads."""
    if priority is None:
        priority = PRIORITY_MANUAL if trigger == BackupJob.Trigger.MANUAL else PRIORITY_SCHEDULE
    return retrying(
        lambda: BackupJob.objects.create(
            host=host,
            kind=kind,
            prune=prune,
            trigger=trigger,
            priority=priority,
            run_after=run_after or runnable_now(),
            **payload,
        )
    )


# -- claim -------------------------------------------------------------------------


def _candidates_query(limit: int, scope: ClaimScope | None = None):
    """(job id, host id) of runnable jobs whose host is not busy, in claim order.

    One statement, and one the database answers by walking job_claim_idx (state,
    priority, run_after, id) from state='queued' and stopping after `limit` rows:
    - ORDER BY (priority, run_after, id), without `state`: with state fixed by the
      WHERE clause the index yields that order. Naming `state` too made MariaDB 10.11
      sort instead, because the connection's collation (utf8mb4_general_ci) differs
      from the column's (utf8mb4_unicode_ci), so it did not treat the ORDER BY's state
      as the constant of the WHERE: a filesort of every queued job, 20 ms at depth
      10,000 against 0.2 ms.
    - busy hosts (one per running job, few) are excluded by a NOT IN subquery, which
      MariaDB materialises once; joining Host instead let it plan the host table first
      and sort every queued job.
    EXPLAIN in tests/queue/test_processes.py checks the plan on MariaDB.
    - storage filter (scope.allowed not None): a condition on the job's own storage
      column (BackupJob.storage, kept in step with its host's), checked on the rows the
      index walk reads; an earlier NOT IN over the host table cost 0.3 ms a claim.
    """
    busy = Host.objects.filter(running_job__isnull=False).values("pk")
    jobs = BackupJob.objects.filter(state=State.QUEUED, run_after__lte=Now()).exclude(
        host_id__in=busy
    )
    if scope is not None and scope.allowed is not None:
        jobs = jobs.filter(on_storages(scope.allowed, scope.default_pk))
    return jobs.order_by("priority", "run_after", "id").values_list("id", "host_id")[:limit]


_CANDIDATE_SQL: dict[tuple, tuple[str, tuple]] = {}  # compiled statements, see _candidates


def _candidates(limit: int, scope: ClaimScope | None = None) -> list[tuple[int, int]]:
    """_candidates_query's rows. Its SQL is compiled once per (database, limit, storage
    set) and kept: building the queryset and compiling it cost Django about 0.8 ms a
    claim, the statement itself 0.05 ms (SQLite, depth 10,000). Now() is SQL, not a
    parameter, so a kept statement stays right."""
    allowed = None if scope is None or scope.allowed is None else frozenset(scope.allowed)
    key = (connection.vendor, connection.settings_dict["NAME"], limit, allowed,
           scope.default_pk if scope else None)  # fmt: skip
    compiled = _CANDIDATE_SQL.get(key)
    if compiled is None:
        if len(_CANDIDATE_SQL) > 64:  # storage sets change rarely; never grow without bound
            _CANDIDATE_SQL.clear()
        compiled = _candidates_query(limit, scope).query.sql_with_params()
        _CANDIDATE_SQL[key] = compiled
    with connection.cursor() as cursor:
        cursor.execute(*compiled)
        return [(job_id, host_id) for job_id, host_id in cursor.fetchall()]


def _at_running_limit() -> bool:
    """GlobalConfig.max_running_jobs (0 = no limit). A soft limit: claims racing on
    different hosts may overshoot it by the number of runners claiming at that moment."""
    limit = GlobalConfig.objects.filter(pk=1).values_list("max_running_jobs", flat=True).first()
    if not limit:
        return False
    return BackupJob.objects.filter(state=State.RUNNING).count() >= limit


def _try_claim(
    job_id: int, host_id: int, worker_id: str, ttl: int, scope: ClaimScope | None = None
) -> Lease | None:
    """One transaction: take the host row (free -> this job), then the job row
    (queued -> running). Either conditional UPDATE hitting zero rows rolls back, as
    does a capped storage found full (storages.cap_reached, between the two)."""
    token = secrets.token_hex(16)
    try:
        with transaction.atomic():
            free_host = Host.objects.filter(pk=host_id, running_job__isnull=True)
            if connection.features.has_select_for_update_skip_locked:
                # Another runner holding this host row is claiming it: skip, don't wait.
                if not list(free_host.select_for_update(skip_locked=True).values_list("pk")):
                    return None
            if free_host.update(running_job_id=job_id, lease_token=token) != 1:
                return None
            if scope is not None and cap_reached(host_id, scope):
                raise _LostRaceError
            won = BackupJob.objects.filter(
                pk=job_id, state=State.QUEUED, run_after__lte=Now()
            ).update(
                state=State.RUNNING,
                worker_id=worker_id,
                lease_token=token,
                lease_expires_at=_expiry(ttl),
                heartbeat_at=Now(),
                started_at=Now(),
                finished_at=None,
                attempts=F("attempts") + 1,
            )
            if won != 1:
                raise _LostRaceError
    except _LostRaceError:
        return None
    return Lease(job_id=job_id, host_id=host_id, token=token, worker_id=worker_id)


def claim(
    worker_id: str,
    *,
    ttl: int | None = None,
    batch: int = CLAIM_BATCH,
    storages: Collection[int] | None = None,
) -> Lease | None:
    """Claim the most urgent runnable job whose host is free, or None.

    On success the job is running with a lease of `ttl` seconds (database clock), its
    attempts counter incremented and worker_id set, and its host row points at it.
    `storages` (ids; None = every storage) limits it to hosts on those storages; a
    storage at its max_running_jobs is skipped (an exact cap: cap_reached).
    """
    ttl = ttl or lease_ttl()
    if retrying(_at_running_limit):
        return None
    scope = retrying(lambda: claim_scope(storages))
    if scope.allowed is not None and not scope.allowed:
        return None
    for _round in range(CLAIM_ROUNDS):
        candidates = retrying(lambda: _candidates(batch, scope))
        if not candidates:
            return None
        tried_hosts: set[int] = set()
        for job_id, host_id in candidates:
            if host_id in tried_hosts:  # only one job per host can win; skip the rest
                continue
            tried_hosts.add(host_id)
            lease = retrying(lambda j=job_id, h=host_id: _try_claim(j, h, worker_id, ttl, scope))
            if lease is not None:
                return lease
    return None


# -- while running -----------------------------------------------------------------


def heartbeat(lease: Lease, *, ttl: int | None = None) -> Beat:
    """Renew the lease (database clock). LOST when the token no longer matches.

    Each statement is one token-conditioned UPDATE in autocommit, atomic on its own; the
    usual beat (no cancel pending) is the first one alone, a single round trip. When it
    matches nothing, the second (without the cancel condition) tells a pending cancel
    (renewed: the runner needs the lease while it stops rsync) from a lost lease."""
    ttl = ttl or lease_ttl()

    def beat() -> Beat:
        mine = BackupJob.objects.filter(
            pk=lease.job_id, state=State.RUNNING, lease_token=lease.token
        )
        renew = {"lease_expires_at": _expiry(ttl), "heartbeat_at": Now()}
        if mine.filter(cancel_requested=False).update(**renew) == 1:
            return Beat.OK
        return Beat.CANCEL if mine.update(**renew) == 1 else Beat.LOST

    return retrying(beat)


def peek(lease: Lease) -> Beat:
    """What a heartbeat would find, read-only: one indexed SELECT by primary key, no
    write, no lock. The runner calls it every POBSYNC_CANCEL_POLL_INTERVAL seconds
    between lease renewals, so a cancel is noticed within seconds while the lease is
    still written only once per heartbeat interval. LOST means the token moved on
    (tokens never come back), so acting on it at once is as safe as on a heartbeat."""

    def look() -> Beat:
        row = (
            BackupJob.objects.filter(pk=lease.job_id)
            .values_list("state", "lease_token", "cancel_requested")
            .first()
        )
        if row is None or row[0] != State.RUNNING or row[1] != lease.token:
            return Beat.LOST
        return Beat.CANCEL if row[2] else Beat.OK

    return retrying(look)


def _release(lease: Lease, **job_fields) -> bool:
    def release() -> bool:
        try:
            with transaction.atomic():
                Host.objects.filter(
                    pk=lease.host_id, running_job_id=lease.job_id, lease_token=lease.token
                ).update(running_job=None, lease_token="")
                done = BackupJob.objects.filter(
                    pk=lease.job_id, state=State.RUNNING, lease_token=lease.token
                ).update(lease_token="", lease_expires_at=None, **job_fields)
                if done != 1:
                    raise _LostRaceError
        except _LostRaceError:
            return False
        return True

    return retrying(release)


def finish(lease: Lease, state: str, *, error: str = "") -> bool:
    """Record the outcome (succeeded/failed/cancelled) and free the host, in one
    transaction fenced by the token. False means fenced: nothing was written."""
    if state not in {State.SUCCEEDED, State.FAILED, State.CANCELLED}:
        raise ValueError(f"finish() takes a final state, not {state!r}")
    return _release(lease, state=state, finished_at=Now(), error=error[:2000])


def requeue(lease: Lease, *, delay: int = 0, error: str = "", count_attempt: bool = False) -> bool:
    """Give the job back (queued, runnable after `delay` s) and free the host; fenced
    like finish(). Without count_attempt the claim does not use up an attempt (a runner
    shutting down, a host locked by a CLI backup)."""
    fields = {
        "state": State.QUEUED,
        # Without a delay, the database's own clock as it is: on SQLite, Now() plus a
        # timedelta is formatted by Python ("...01.123000"), which sorts after Now()'s
        # "...01.123" as text, so the job was invisible to a claim in that millisecond.
        "run_after": Now() + timedelta(seconds=delay) if delay else Now(),
        "started_at": None,
        "error": error[:2000],
    }
    if not count_attempt:
        fields["attempts"] = F("attempts") - 1
    return _release(lease, **fields)


# -- operator actions and repair -----------------------------------------------------


CANCELLED = "cancelled"  # was queued: cancelled at once
CANCEL_REQUESTED = "requested"  # running: its runner stops within one cancel poll
ALREADY_FINISHED = "finished"  # nothing to do


def cancel(job_id: int) -> str:
    """Cancel a job: queued -> cancelled at once (CANCELLED); running ->
    cancel_requested, which its runner sees within one cancel poll (peek) and stops rsync
    (CANCEL_REQUESTED); a finished job is left alone (ALREADY_FINISHED).
    Raises BackupJob.DoesNotExist for an unknown id."""

    def run() -> str:
        with transaction.atomic():
            if BackupJob.objects.filter(pk=job_id, state=State.QUEUED).update(
                state=State.CANCELLED, finished_at=Now(), error="cancelled before it ran"
            ):
                return CANCELLED
            if BackupJob.objects.filter(pk=job_id, state=State.RUNNING).update(
                cancel_requested=True
            ):
                return CANCEL_REQUESTED
            BackupJob.objects.values_list("pk").get(pk=job_id)  # DoesNotExist if unknown
            return ALREADY_FINISHED

    return retrying(run)


def _reap_fields(job: dict) -> tuple[dict, str]:
    if job["cancel_requested"]:
        fields = {"state": State.CANCELLED, "finished_at": Now(), "error": "lease expired"}
        return fields, "failed"
    if job["attempts"] < job["max_attempts"]:
        fields = {
            "state": State.QUEUED,
            "run_after": Now(),
            "started_at": None,
            "error": f"attempt {job['attempts']}: lease expired (worker {job['worker_id']})",
        }
        return fields, "requeued"
    return {"state": State.FAILED, "finished_at": Now(), "error": "lease expired"}, "failed"


def _reap_one(job: dict) -> str | None:
    token = job["lease_token"]
    try:
        with transaction.atomic():
            Host.objects.filter(
                pk=job["host_id"], running_job_id=job["id"], lease_token=token
            ).update(running_job=None, lease_token="")
            # A runner killed between the snapshot's commit point and finish(): the
            # backup is done (complete on disk and in SQL). Running it again would make
            # a second snapshot for one job, and "failed" would be untrue.
            if has_committed_run(job["id"]):
                fields = {
                    "state": State.SUCCEEDED,
                    "finished_at": Now(),
                    "error": COMMITTED_RUNNER_LOST,
                }
                result = "recovered"
            else:
                fields, result = _reap_fields(job)
            reaped = BackupJob.objects.filter(
                pk=job["id"], state=State.RUNNING, lease_token=token, lease_expires_at__lt=Now()
            ).update(lease_token="", lease_expires_at=None, **fields)
            if reaped != 1:  # renewed or finished meanwhile
                raise _LostRaceError
            # The engine's run for this attempt died with its runner: say so now, not
            # when (if ever) the next run of this host starts (with the snapshot's
            # outcome when it was committed: run_status.settle_dead_runs).
            # Inside this transaction, after the host row: the host status columns the
            # dashboard reads move with the run (lock order host, job, run).
            settle_dead_runs(BackupRun.objects.filter(job_id=job["id"]), RUNNER_LOST)
    except _LostRaceError:
        return None
    return result


def _record_reaped(job: dict, outcome: str) -> None:
    """The job_reaped event (docs/events.md), once per job attempt whoever reaps it."""
    record_event(
        Event.Kind.JOB_REAPED,
        f"job-reaped:{job['id']}:{job['attempts']}",
        f"job {job['id']}: runner {job['worker_id']} lost (lease expired); {outcome}",
        host=Host(pk=job["host_id"], name=job["host__name"]),
        details={
            "job_id": job["id"],
            "attempt": job["attempts"],
            "worker_id": job["worker_id"],
            "outcome": outcome,
        },
    )


def reap(*, limit: int = 100) -> ReapResult:
    """Take back expired leases: the job goes back to queued while attempts remain,
    else failed "lease expired" (cancelled if a cancel was pending); the host is freed
    and the job's BackupRun still marked running becomes failed (RUNNER_LOST) in the
    same transaction, conditioned on the token. A job whose run reached the snapshot's
    commit point before its runner died is succeeded instead ("recovered"), and its run
    gets the snapshot's outcome: it is never run again. Also frees a host row whose
    running_job is not running (left by hand edits), which would block it for ever."""
    expired = retrying(
        lambda: list(
            BackupJob.objects.filter(state=State.RUNNING, lease_expires_at__lt=Now()).values(
                "id",
                "host_id",
                "lease_token",
                "attempts",
                "max_attempts",
                "worker_id",
                "cancel_requested",
                "host__name",
            )[:limit]
        )
    )
    counts = {"requeued": 0, "failed": 0, "recovered": 0}
    for job in expired:
        outcome = retrying(lambda j=job: _reap_one(j))
        if outcome:
            counts[outcome] += 1
            log.warning("job %s: lease expired on %s, %s", job["id"], job["worker_id"], outcome)
            _record_reaped(job, outcome)  # alerts (issue 14)
    stale = retrying(
        lambda: list(
            Host.objects.filter(running_job__isnull=False)
            .exclude(running_job__state=State.RUNNING)
            .values_list("pk", "running_job_id", "lease_token")
        )
    )
    repaired = 0
    for pk, job_id, token in stale:
        repaired += retrying(
            lambda p=pk, j=job_id, t=token: Host.objects.filter(
                pk=p, running_job_id=j, lease_token=t
            ).update(running_job=None, lease_token="")
        )
    return ReapResult(counts["requeued"], counts["failed"], repaired, counts["recovered"])
