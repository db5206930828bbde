"""Each host's run status, denormalised onto its Host row (like Schedule.next_run_at),
so "how is every host doing" is one scan of Host instead of two subqueries per host.

Host.last_run_outcome / last_run_at: outcome and started_at of the newest (by
started_at) finished run: success, warning, failed or cancelled; blank / NULL until
one finished. Host.last_success_at: when the newest run with outcome success or warning
finished (its started_at if finished_at is missing); NULL until one did.

Invariants:
- Every write that gives a BackupRun its final outcome calls record_finished_run()
  (or goes through settle_dead_runs()), in the same transaction when there is one.
- The writes are conditional UPDATEs of the named columns only: Host rows also carry
  the queue's mutex (running_job, lease_token), written concurrently by runners, so a
  host is never save()d here.
- Monotonic: an older run never overwrites a newer one's status (compared by
  started_at; recording the same run again is harmless), and last_success_at only
  moves forward. Runs of one host never overlap (the host lock serialises them), so
  the newest success by started_at is also the latest to finish: that is what
  status.py and the dashboard always meant by "last success".
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce, Now
from django.utils import timezone

from pobsync_models.models import BackupRun, Host, SnapshotRecord
from pobsync_models.status import SUCCESS_OUTCOMES

FINISHED_OUTCOMES = tuple(o for o in BackupRun.Outcome.values if o != BackupRun.Outcome.RUNNING)
_BACKFILL_BATCH = 500


def record_finished_run(run: BackupRun) -> None:
    """Put a finished run's status on its host, unless a newer run's is already there.

    Reads only run.host_id, outcome, started_at and finished_at: 1 UPDATE, 2 for a
    success or warning. A run still marked running is ignored.
    """
    if run.outcome not in FINISHED_OUTCOMES:
        return
    Host.objects.filter(
        Q(last_run_at__isnull=True) | Q(last_run_at__lte=run.started_at), pk=run.host_id
    ).update(last_run_outcome=run.outcome, last_run_at=run.started_at)
    if run.outcome in SUCCESS_OUTCOMES:
        at = run.finished_at or run.started_at
        Host.objects.filter(
            Q(last_success_at__isnull=True) | Q(last_success_at__lt=at), pk=run.host_id
        ).update(last_success_at=at)


COMMITTED_BUT_LOST = (
    "snapshot {name} was committed, but the process running this backup stopped before "
    "recording the outcome; recorded from the snapshot{extra}"
)


def _committed_outcome(snapshot: SnapshotRecord) -> tuple[str, str]:
    """(outcome, message) for a run whose snapshot reached the commit point: the outcome
    its process would have written (success, or warning for a non-zero rsync exit that the
    host accepts, since only those commit)."""
    code = snapshot.rsync_exit_code
    outcome = BackupRun.Outcome.SUCCESS if not code else BackupRun.Outcome.WARNING
    extra = f" (rsync exit {code})" if code else ""
    extra += "; prune, if asked for, did not run"
    return outcome, COMMITTED_BUT_LOST.format(name=snapshot.name, extra=extra)


def settle_dead_runs(runs: QuerySet, message: str, *, finished_at: Any = None) -> int:
    """Give those of `runs` still running (their process died) their final outcome and
    record each on its host, in one transaction. Returns how many it settled.

    A run whose snapshot is complete died after the commit point: the backup is done,
    so it gets the outcome the snapshot shows (success or warning, its stats and finish
    time), never "failed". Any other dead run is failed with `message` (finished now by
    the database clock unless `finished_at` is given)."""
    with transaction.atomic():
        dead = list(
            runs.filter(outcome=BackupRun.Outcome.RUNNING)
            .select_for_update()
            .order_by()
            .only("pk", "host_id", "started_at", "snapshot_id")
        )
        if not dead:
            return 0
        committed = {
            s.pk: s
            for s in SnapshotRecord.objects.filter(
                pk__in=[r.snapshot_id for r in dead if r.snapshot_id],
                state=SnapshotRecord.State.COMPLETE,
            )
        }
        failed = [run for run in dead if run.snapshot_id not in committed]
        BackupRun.objects.filter(pk__in=[run.pk for run in failed]).update(
            outcome=BackupRun.Outcome.FAILED,
            finished_at=finished_at if finished_at is not None else Now(),
            message=message,
        )
        for run in failed:
            run.outcome = BackupRun.Outcome.FAILED
            record_finished_run(run)
        for run in dead:
            snapshot = committed.get(run.snapshot_id)
            if snapshot is None:
                continue
            run.outcome, run.message = _committed_outcome(snapshot)
            run.finished_at = snapshot.finished_at or finished_at or timezone.now()
            run.rsync_exit_code = snapshot.rsync_exit_code
            fields = ("files_total", "files_transferred", "bytes_total", "bytes_transferred")
            for name in fields:
                setattr(run, name, getattr(snapshot, name))
            run.save(
                update_fields=["outcome", "message", "finished_at", "rsync_exit_code", *fields]
            )
            record_finished_run(run)
    return len(dead)


def has_committed_run(job_id: int) -> bool:
    """Whether a run of this job reached the commit point (its snapshot is complete):
    then the job's backup is done even if its runner died before finishing the job."""
    return BackupRun.objects.filter(
        job_id=job_id, snapshot__state=SnapshotRecord.State.COMPLETE
    ).exists()


def backfill_run_status(host_model: type = Host, run_model: type = BackupRun) -> int:
    """Compute every host's run status from its BackupRun rows and write it: one read
    query (index probes per host, as the dashboard did) and one UPDATE per 500 hosts.
    Takes the model classes so migration 0003 can pass its historical ones. Returns
    the number of hosts with at least one finished run."""

    def newest(**filters: object) -> QuerySet:
        return run_model.objects.filter(host=OuterRef("pk"), **filters).order_by("-started_at")

    finished = newest(outcome__in=FINISHED_OUTCOMES)
    success = newest(outcome__in=SUCCESS_OUTCOMES).annotate(
        at=Coalesce("finished_at", "started_at")
    )
    rows = (
        host_model.objects.order_by()
        .annotate(
            new_outcome=Subquery(finished.values("outcome")[:1]),
            new_run_at=Subquery(finished.values("started_at")[:1]),
            new_success_at=Subquery(success.values("at")[:1]),
        )
        .values_list("pk", "new_outcome", "new_run_at", "new_success_at")
    )
    hosts = [
        host_model(pk=pk, last_run_outcome=o, last_run_at=run_at, last_success_at=success_at)
        for pk, o, run_at, success_at in rows
        if run_at is not None
    ]
    host_model.objects.bulk_update(
        hosts, ["last_run_outcome", "last_run_at", "last_success_at"], batch_size=_BACKFILL_BATCH
    )
    return len(hosts)
