"""Everything shown about one host, loaded in a fixed number of queries; shared by the
dashboard's host page and /api/hosts/<name>/."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.http import Http404

from pobsync_models.models import (
    BackupJob,
    BackupRun,
    GlobalConfig,
    Host,
    Schedule,
    SnapshotRecord,
    VerifyRun,
)
from pobsync_models.specs import RETENTION_FIELDS, default_key_path
from pobsync_web.overview import HostRow, host_rows, with_progress

RECENT_RUNS = 20
RECENT_VERIFY_RUNS = 5
PRESENT_SNAPSHOTS = 100
HISTORY_SNAPSHOTS = 20
PRESENT_STATES = (SnapshotRecord.State.COMPLETE, SnapshotRecord.State.PARTIAL)


@dataclass(frozen=True)
class Setting:
    """A resolved setting and whether it came from the global configuration."""

    value: object
    inherited: bool


@dataclass
class HostDetail:
    row: HostRow
    config: GlobalConfig | None
    settings: dict[str, Setting]
    retention: dict[str, Setting]
    schedules: list[Schedule]
    running_job: BackupJob | None
    recent_runs: list[BackupRun]
    present_snapshots: list[SnapshotRecord]
    history_snapshots: list[SnapshotRecord]
    snapshot_counts: dict[str, int]
    verify_runs: list[VerifyRun]

    @property
    def host(self) -> Host:
        return self.row.host

    @property
    def running_jobs(self) -> list[BackupJob]:
        return [self.running_job] if self.running_job is not None else []


def _resolved(own: object, default: object) -> Setting:
    if own in (None, ""):
        return Setting(default, True)
    return Setting(own, False)


def load_host_detail(name: str, now: datetime) -> HostDetail:
    rows = host_rows(Host.objects.filter(name=name), now)
    if not rows:
        raise Http404(f"no host named {name!r}")
    row = rows[0]
    host = row.host
    config = GlobalConfig.load()
    settings = {
        "ssh_user": _resolved(host.ssh_user, config.ssh_user if config else None),
        "ssh_port": _resolved(host.ssh_port, config.ssh_port if config else None),
        "ssh_key_path": _resolved(
            host.ssh_key_path, (config.ssh_key_path if config else "") or str(default_key_path())
        ),
        # docs/hooks.md: [] is "no hook" (own), None inherits the global hook
        "bwlimit": _resolved(host.bwlimit, config.bwlimit if config else ""),
        "pre_hook": _resolved(host.pre_hook, config.pre_hook if config else []),
        "post_hook": _resolved(host.post_hook, config.post_hook if config else []),
        "hook_timeout": _resolved(host.hook_timeout, config.hook_timeout if config else None),
    }
    retention = {
        field.removeprefix("keep_"): _resolved(
            getattr(host, field), (getattr(config, field) if config else None) or 0
        )
        for field in RETENTION_FIELDS
    }
    running_job = None
    if host.running_job_id is not None:
        running_job = with_progress(BackupJob.objects.filter(pk=host.running_job_id)).first()
    snapshots = SnapshotRecord.objects.filter(host=host)
    return HostDetail(
        row=row,
        config=config,
        settings=settings,
        retention=retention,
        schedules=list(Schedule.objects.filter(host=host).order_by("id")),
        running_job=running_job,
        recent_runs=list(host.runs.order_by("-started_at", "id")[:RECENT_RUNS]),
        present_snapshots=list(
            snapshots.filter(state__in=PRESENT_STATES).order_by("-name")[:PRESENT_SNAPSHOTS]
        ),
        history_snapshots=list(
            snapshots.exclude(state__in=PRESENT_STATES).order_by("-name")[:HISTORY_SNAPSHOTS]
        ),
        snapshot_counts=row.snapshots,
        verify_runs=list(host.verify_runs.order_by("-started_at", "-id")[:RECENT_VERIFY_RUNS]),
    )
