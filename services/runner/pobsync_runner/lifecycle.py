"""A snapshot's life in SQL and on disk together: stage (or seed), commit, interrupt.

Invariants:
* The staging directory and a SnapshotRecord in state "partial" exist from the start of
  a run, so a run killed at any point (even with SIGKILL) is already recorded as
  partial; it never looks complete.
* commit() renames <name>.partial to <name> inside the same transaction that marks the
  record complete: if the rename fails the record stays partial; if the database write
  fails the directory is renamed back.
* A partial newer than the newest complete snapshot, taken with the same sources,
  seeds the next run: its directory becomes the new staging directory (rsync then only
  fetches what is missing and deletes what is stale), and its record is marked pruned
  (its data lives on in the new snapshot, whose metadata names it as `seed_name`).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from django.db import transaction

from pobsync_models import __version__
from pobsync_models.models import Host, SnapshotRecord
from pobsync_models.specs import HostSpec
from pobsync_runner.rsync_output import Stats
from pobsync_runner.snapshots import (
    SnapshotMeta,
    final_path,
    fsync_dir,
    new_snapshot_name,
    read_metadata,
    staging_path,
    write_metadata,
)

State = SnapshotRecord.State


@dataclass
class StagedSnapshot:
    record: SnapshotRecord
    staging: Path
    final: Path
    meta: SnapshotMeta
    base: SnapshotRecord | None
    seed: SnapshotRecord | None


def newest_complete(host: Host) -> SnapshotRecord | None:
    """The newest complete snapshot whose directory is really there and which is not
    known to be corrupt: a damaged inode must never be linked into the next snapshot."""
    complete = host.snapshots.filter(state=State.COMPLETE).exclude(
        integrity=SnapshotRecord.Integrity.CORRUPT
    )
    for record in complete.order_by("-name").iterator():
        if Path(record.path).is_dir():
            return record
    return None


def pick_seed(host: Host, spec: HostSpec, base: SnapshotRecord | None) -> SnapshotRecord | None:
    if "--inplace" in spec.rsync_options:
        # --inplace would write into files that may be hard links into older snapshots.
        return None
    partials = host.snapshots.filter(state=State.PARTIAL).order_by("-name")
    if base is not None:
        partials = partials.filter(name__gt=base.name)
    for record in partials[:5]:
        path = Path(record.path)
        meta = read_metadata(path) if path.is_dir() else None
        if meta is not None and tuple(meta.sources) == spec.sources:
            return record
    return None


def _iso(when: datetime | None) -> str | None:
    return when.isoformat() if when else None


def stage(host: Host, spec: HostSpec, now: datetime) -> StagedSnapshot:
    """Create (or seed) the staging directory and its partial record."""
    prefix = now.strftime("%Y-%m-%dT%H%M%S")
    taken = set(host.snapshots.filter(name__startswith=prefix).values_list("name", flat=True))
    name = new_snapshot_name(spec.host_dir, now, taken)
    base = newest_complete(host)
    seed = pick_seed(host, spec, base)
    staging, final = staging_path(spec.host_dir, name), final_path(spec.host_dir, name)
    if seed is not None:
        os.rename(seed.path, staging)
    else:
        staging.mkdir()
    meta = SnapshotMeta(
        name=name,
        host=spec.name,
        state=State.PARTIAL,
        started_at=_iso(now) or "",
        base_name=base.name if base else "",
        seed_name=seed.name if seed else "",
        sources=spec.sources,
        pobsync_version=__version__,
    )
    write_metadata(staging, meta)
    with transaction.atomic():
        record = SnapshotRecord.objects.create(
            host=host,
            name=name,
            path=str(staging),
            state=State.PARTIAL,
            started_at=now,
            base_name=meta.base_name,
            base=base,
            pobsync_version=__version__,
            has_metadata=True,
        )
        if seed is not None:
            SnapshotRecord.objects.filter(pk=seed.pk).update(state=State.PRUNED, pruned_at=now)
    return StagedSnapshot(record, staging, final, meta, base, seed)


def _stat_fields(stats: Stats) -> dict[str, int | None]:
    return {
        "files_total": stats.files_total,
        "files_transferred": stats.files_transferred,
        "bytes_total": stats.bytes_total,
        "bytes_transferred": stats.bytes_transferred,
    }


def commit(staged: StagedSnapshot, exit_code: int, stats: Stats, now: datetime) -> None:
    """The commit point: metadata says complete, then rename + record update together."""
    staged.meta = dataclasses.replace(
        staged.meta,
        state=State.COMPLETE,
        finished_at=_iso(now),
        rsync_exit_code=exit_code,
        **_stat_fields(stats),
    )
    write_metadata(staged.staging, staged.meta)
    renamed = False
    try:
        with transaction.atomic():
            SnapshotRecord.objects.filter(pk=staged.record.pk).update(
                state=State.COMPLETE,
                path=str(staged.final),
                finished_at=now,
                rsync_exit_code=exit_code,
                **_stat_fields(stats),
            )
            os.rename(staged.staging, staged.final)
            renamed = True
    except BaseException:
        if renamed:
            os.rename(staged.final, staged.staging)
        raise
    fsync_dir(staged.final.parent)
    staged.record.refresh_from_db()


def interrupt(staged: StagedSnapshot, exit_code: int | None, stats: Stats, now: datetime) -> None:
    """Leave the staging directory as a recorded partial (it seeds the next run)."""
    staged.meta = dataclasses.replace(
        staged.meta, finished_at=_iso(now), rsync_exit_code=exit_code, **_stat_fields(stats)
    )
    try:
        write_metadata(staged.staging, staged.meta)
    except OSError:
        pass  # the record below is what counts; discovery copes without metadata
    SnapshotRecord.objects.filter(pk=staged.record.pk).update(
        finished_at=now, rsync_exit_code=exit_code, **_stat_fields(stats)
    )
    staged.record.refresh_from_db()
