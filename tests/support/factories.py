"""Small factories for test data (no fixture files)."""

from __future__ import annotations

from datetime import datetime, timedelta
from itertools import count
from pathlib import Path
from typing import Any

from django.utils import timezone

from pobsync_models.models import (
    BackupJob,
    BackupRun,
    GlobalConfig,
    Host,
    Schedule,
    SnapshotRecord,
)
from pobsync_models.queue import runnable_now
from pobsync_models.run_status import record_finished_run
from pobsync_models.specs import SnapshotName
from pobsync_models.storages import default_storage, write_marker

_seq = count(1)


def make_config(backup_root: Path | str = "/tmp/pobsync-test-root", **kw: Any) -> GlobalConfig:
    config = GlobalConfig(pk=1, backup_root=str(backup_root), **kw)
    config.save()  # also makes backup_root the default storage
    if Path(backup_root).is_dir():  # as configure-global does: mark the default storage
        write_marker(default_storage())
    return config


def make_host(name: str | None = None, **kw: Any) -> Host:
    kw.setdefault("address", "127.0.0.1")
    kw.setdefault("sources", ["/srv/data"])
    return Host.objects.create(name=name or f"host{next(_seq)}", **kw)


def make_schedule(host: Host, cron: str = "15 2 * * *", **kw: Any) -> Schedule:
    return Schedule.objects.create(host=host, cron=cron, **kw)


def make_job(host: Host, **kw: Any) -> BackupJob:
    kw.setdefault("run_after", runnable_now())
    return BackupJob.objects.create(host=host, **kw)


def make_run(
    host: Host,
    outcome: str = BackupRun.Outcome.SUCCESS,
    started_at: datetime | None = None,
    **kw: Any,
) -> BackupRun:
    started = started_at or timezone.now() - timedelta(hours=1)
    kw.setdefault("finished_at", started + timedelta(minutes=5))
    run = BackupRun.objects.create(host=host, outcome=outcome, started_at=started, **kw)
    record_finished_run(run)  # as the engine does when it finishes a run
    return run


def make_snapshot(
    host: Host, when: datetime, state: str = SnapshotRecord.State.COMPLETE, **kw: Any
) -> SnapshotRecord:
    name = str(SnapshotName.for_time(when))
    kw.setdefault("path", f"/tmp/pobsync-test-root/{host.name}/{name}")
    kw.setdefault("started_at", when)
    kw.setdefault("finished_at", when + timedelta(minutes=5))
    return SnapshotRecord.objects.create(host=host, name=name, state=state, **kw)
