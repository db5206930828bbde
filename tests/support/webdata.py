"""A small, varied installation for the dashboard's browser test and screenshots: one
host in every state the dashboard distinguishes."""

from __future__ import annotations

from datetime import datetime, timedelta

from pobsync_models.models import BackupJob, BackupRun, Host, SnapshotRecord, WorkerProcess
from tests.support.factories import (
    make_config,
    make_host,
    make_job,
    make_run,
    make_schedule,
    make_snapshot,
)

RSYNC_ERROR_TAIL = (
    "rsync: connection unexpectedly closed (0 bytes received so far) [Receiver]\n"
    "rsync error: unexplained error (code 255) at io.c(231) [Receiver=3.2.7]\n"
    "ssh: connect to host db1.example.internal port 22: Connection timed out"
)
GiB = 1024**3


def _history(host: Host, now: datetime, days: int, *, outcome: str = "success") -> None:
    """`days` daily snapshots with their successful runs, the newest `days` days ago+1."""
    previous = None
    for age in range(days - 1, -1, -1):
        when = now - timedelta(days=age, hours=20)
        snap = make_snapshot(
            host,
            when,
            base_name=previous.name if previous else "",
            base=previous,
            bytes_total=42 * GiB + age * 10**7,
            bytes_transferred=(300 + age * 7) * 1024**2,
            files_total=812_000,
            files_transferred=1_200 + age,
            rsync_exit_code=0,
        )
        make_run(
            host,
            outcome=outcome,
            started_at=when,
            finished_at=when + timedelta(minutes=11),
            snapshot=snap,
            snapshot_name=snap.name,
            base_snapshot_name=snap.base_name,
            rsync_exit_code=0,
            bytes_total=snap.bytes_total,
            bytes_transferred=snap.bytes_transferred,
            files_total=snap.files_total,
            files_transferred=snap.files_transferred,
        )
        previous = snap


def seed_demo(now: datetime) -> dict[str, Host]:
    make_config("/srv/pobsync", keep_daily=7, keep_weekly=4, keep_monthly=6)
    hosts: dict[str, Host] = {}

    web = hosts["web1"] = make_host("web1", address="10.0.0.11", sources=["/etc", "/srv/www"])
    make_schedule(web, "15 2 * * *", prune=True, next_run_at=now + timedelta(hours=5))
    _history(web, now, 6)
    old = make_snapshot(web, now - timedelta(days=40), state=SnapshotRecord.State.PRUNED)
    old.pruned_at = now - timedelta(days=3)
    old.save()

    db = hosts["db1"] = make_host(
        "db1", address="db1.example.internal", sources=["/var/lib/mysql-backup", "/etc"]
    )
    make_schedule(db, "30 1 * * *", next_run_at=now + timedelta(hours=4))
    _history(db, now, 3)
    make_run(
        db,
        outcome=BackupRun.Outcome.FAILED,
        started_at=now - timedelta(hours=3),
        finished_at=now - timedelta(hours=3) + timedelta(seconds=31),
        rsync_exit_code=255,
        message="rsync exited with code 255 (ssh connection failed)",
        log_tail=RSYNC_ERROR_TAIL,
    )

    mail = hosts["mail"] = make_host("mail", address="10.0.0.25", sources=["/var/mail"])
    make_schedule(mail, "0 3 * * *", next_run_at=now + timedelta(hours=6))
    _history(mail, now - timedelta(days=3), 4)

    files = hosts["files"] = make_host(
        "files", address="10.0.0.40", sources=["/home"], excludes=["*.tmp", ".cache/"]
    )
    make_schedule(files, "0 */6 * * *", next_run_at=now + timedelta(minutes=40))
    _history(files, now, 2)
    make_run(
        files,
        outcome=BackupRun.Outcome.WARNING,
        started_at=now - timedelta(hours=5),
        finished_at=now - timedelta(hours=4, minutes=20),
        rsync_exit_code=24,
        message="some files vanished before they could be transferred (code 24)",
        log_tail='file has vanished: "/home/carol/.cache/thumb.tmp"',
        bytes_transferred=2 * GiB,
        bytes_total=310 * GiB,
    )

    build = hosts["build"] = make_host("build", address="10.0.0.60", sources=["/opt/ci"])
    make_schedule(build, "45 23 * * *", next_run_at=now + timedelta(hours=2))
    _history(build, now, 5)
    job = make_job(
        build,
        state=BackupJob.State.RUNNING,
        trigger=BackupJob.Trigger.SCHEDULE,
        started_at=now - timedelta(minutes=7),
        worker_id="backup01:4242",
        lease_expires_at=now + timedelta(minutes=4),
        attempts=1,
    )
    Host.objects.filter(pk=build.pk).update(running_job=job, lease_token="t")
    make_run(
        build,
        outcome=BackupRun.Outcome.RUNNING,
        job=job,
        started_at=now - timedelta(minutes=7),
        finished_at=None,
        progress_percent=63.0,
        progress_bytes=27 * GiB,
        progress_files=412_000,
        progress_updated_at=now - timedelta(seconds=4),
        worker_id="backup01:4242",
    )
    make_snapshot(build, now - timedelta(days=9), state=SnapshotRecord.State.PARTIAL)

    hosts["laptop-anna"] = make_host("laptop-anna", address="10.0.1.7", sources=["/home/anna"])
    hosts["old-nas"] = make_host("old-nas", address="10.0.0.90", enabled=False)

    for name in ("mail", "files"):
        make_job(hosts[name], run_after=now - timedelta(minutes=2), trigger="manual", priority=0)
    make_job(
        web,
        run_after=now + timedelta(hours=5),
        trigger="schedule",
        scheduled_for=now + timedelta(hours=5),
        schedule=web.schedules.first(),
    )
    finished = now - timedelta(hours=20)
    make_job(
        db,
        state=BackupJob.State.FAILED,
        trigger="schedule",
        started_at=now - timedelta(hours=3),
        finished_at=now - timedelta(hours=3) + timedelta(seconds=31),
        attempts=3,
        error="rsync exited with code 255 (ssh connection failed)",
    )
    for host in (web, mail):
        make_job(
            host,
            state=BackupJob.State.SUCCEEDED,
            trigger="schedule",
            started_at=finished,
            finished_at=finished + timedelta(minutes=11),
            attempts=1,
        )
    for kind, worker in (("scheduler", "backup01:101"), ("runner", "backup01:4242")):
        WorkerProcess.objects.create(
            worker_id=worker,
            kind=kind,
            version="0.1.0",
            started_at=now - timedelta(days=2),
            last_seen_at=now - timedelta(seconds=20),
        )
    return hosts


def seed_many(
    now: datetime, hosts: int, runs_per_host: int, snapshots_per_host: int, prefix: str = "h"
) -> list[Host]:
    """Bulk data for query-count tests and bench/web.py: every host has a daily schedule,
    `runs_per_host` runs (every 7th failed, the newest of every 10th host failed) and
    `snapshots_per_host` snapshots (the oldest third pruned), a queued job per 20 hosts."""
    from pobsync_models.models import Schedule

    made = Host.objects.bulk_create(
        [
            Host(name=f"{prefix}{i:05d}", address=f"10.{i // 250}.{i % 250}.1", sources=["/srv"])
            for i in range(hosts)
        ],
        batch_size=500,
    )
    if made and made[0].pk is None:  # MariaDB does not return ids from bulk_create
        made = list(Host.objects.filter(name__startswith=prefix).order_by("name"))
    Schedule.objects.bulk_create(
        [
            Schedule(host=h, cron=f"{i % 60} {i % 24} * * *", next_run_at=now + timedelta(hours=1))
            for i, h in enumerate(made)
        ],
        batch_size=500,
    )
    runs, snaps, jobs = [], [], []
    for i, host in enumerate(made):
        for r in range(runs_per_host):
            started = now - timedelta(hours=r * 24 + 2)
            failed = (r % 7 == 3) or (r == 0 and i % 10 == 0)
            runs.append(
                BackupRun(
                    host=host,
                    outcome="failed" if failed else "success",
                    started_at=started,
                    finished_at=started + timedelta(minutes=10),
                    rsync_exit_code=23 if failed else 0,
                    bytes_transferred=10**8 + r,
                    bytes_total=10**10,
                    message="rsync exited with code 23" if failed else "",
                    log_tail="rsync: some files could not be transferred" if failed else "",
                )
            )
        for s in range(snapshots_per_host):
            when = now - timedelta(days=s, hours=2)
            snaps.append(
                SnapshotRecord(
                    host=host,
                    name=when.strftime("%Y-%m-%dT%H%M%SZ"),
                    path=f"/srv/pobsync/{host.name}/{s}",
                    state="pruned" if s >= snapshots_per_host * 2 // 3 else "complete",
                    started_at=when,
                    finished_at=when + timedelta(minutes=10),
                    bytes_total=10**10,
                    bytes_transferred=10**8,
                )
            )
        if i % 20 == 0:
            jobs.append(BackupJob(host=host, run_after=now, trigger="schedule"))
    BackupRun.objects.bulk_create(runs, batch_size=2000)
    SnapshotRecord.objects.bulk_create(snaps, batch_size=2000)
    BackupJob.objects.bulk_create(jobs, batch_size=500)
    return made
