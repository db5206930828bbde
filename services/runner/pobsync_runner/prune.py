"""Applying a retention plan: rename, mark the record pruned, then delete.

Invariants:
* Runs under the host's lock (taken here, or passed in by a backup that holds it), so
  it never deletes under a running backup.
* Plans from SQL (SnapshotRecord), never from a directory listing.
* Deletion order: rename <name> to <name>.deleting (the snapshot is gone from its name
  at once), mark the record pruned (kept as history, never dropped), then delete the
  tree. A crash leaves a *.deleting directory that the next apply removes.
* max_delete caps the snapshots deleted by one apply, oldest first.
"""

from __future__ import annotations

import os
import shutil
import stat
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from pobsync_models.models import BackupRun, Host, SnapshotRecord
from pobsync_models.restores import protected_snapshots
from pobsync_models.retention import Decision, plan_retention
from pobsync_models.specs import HostSpec
from pobsync_models.units import format_bytes
from pobsync_runner.lock import HostLock
from pobsync_runner.snapshots import DELETING_SUFFIX, classify_entry, deleting_path

State = SnapshotRecord.State


@dataclass
class PruneResult:
    plan: list[Decision]
    deleted: list[str] = field(default_factory=list)
    held_back: list[str] = field(default_factory=list)  # over --max-delete
    # What the deleted snapshots freed by their last space scan (exclusive bytes, a
    # lower bound: files shared only among them are freed too); None when unscanned.
    freed_at_least: int | None = None

    def summary(self) -> str:
        text = f"pruned {len(self.deleted)} snapshot(s)"
        if self.deleted and self.freed_at_least is not None:
            text += f", freeing at least {format_bytes(self.freed_at_least)}"
        if self.held_back:
            text += f", {len(self.held_back)} left for the next run (--max-delete)"
        return text


def protected_names(host: Host, exclude_run: int | None = None) -> dict[str, str]:
    """Name -> reason for the snapshots retention must keep: those a running backup of
    this host uses (as base, or as its own snapshot), and those a queued or running
    restore reads.

    `exclude_run`: the backup that is pruning after its own commit; it no longer needs
    its base.
    """
    names = protected_snapshots(host)
    running = BackupRun.objects.filter(host=host, outcome=BackupRun.Outcome.RUNNING)
    for base, own in running.exclude(pk=exclude_run).values_list(
        "base_snapshot_name", "snapshot_name"
    ):
        names.update((n, "base of a running backup") for n in (base, own) if n)
    return names


def plan_for_host(
    host: Host, spec: HostSpec, now: datetime, exclude_run: int | None = None
) -> list[Decision]:
    records = host.snapshots.filter(state__in=[State.COMPLETE, State.PARTIAL]).only("name", "state")
    protected = protected_names(host, exclude_run)
    return plan_retention(records, spec.retention, now, protected_names=protected)


def apply_retention(
    host: Host,
    spec: HostSpec,
    *,
    now: datetime,
    max_delete: int | None = None,
    lock: HostLock | None = None,
    exclude_run: int | None = None,
) -> PruneResult:
    """Delete what the plan prunes (at most max_delete); raises HostBusy if locked, and
    StorageUnavailableError on an unmounted storage (where every snapshot would look
    gone and be marked pruned)."""
    if lock is None:
        from pobsync_runner.storage_guard import mount_guard

        mount_guard(spec, host)
        with HostLock(spec.host_dir, purpose="retention") as own:
            return apply_retention(
                host, spec, now=now, max_delete=max_delete, lock=own, exclude_run=exclude_run
            )
    _finish_leftover_deletions(spec.host_dir)
    plan = plan_for_host(host, spec, now, exclude_run)
    doomed = [d.name for d in reversed(plan) if not d.keep]  # oldest first
    if max_delete is not None:
        doomed, held_back = doomed[:max_delete], doomed[max_delete:]
    else:
        held_back = []
    result = PruneResult(plan=plan, held_back=held_back)
    records = {r.name: r for r in host.snapshots.filter(name__in=doomed)}
    exclusive = [records[name].exclusive_bytes for name in doomed]
    if doomed and None not in exclusive:
        result.freed_at_least = sum(exclusive)
    for name in doomed:
        record = records[name]
        path = Path(record.path)
        trash = deleting_path(path.parent, name)  # beside it: on its own storage
        if path.exists():
            os.rename(path, trash)
        SnapshotRecord.objects.filter(pk=record.pk).update(state=State.PRUNED, pruned_at=now)
        remove_tree(trash)
        result.deleted.append(name)
    return result


def _finish_leftover_deletions(host_dir: Path) -> None:
    if not host_dir.is_dir():
        return
    for entry in os.scandir(host_dir):
        if entry.name.endswith(DELETING_SUFFIX) and classify_entry(entry.name):
            remove_tree(Path(entry.path))


def remove_tree(path: Path) -> None:
    """rmtree that also removes read-only directories (snapshots keep remote modes)."""

    def make_writable_and_retry(func, failed_path, _exc_info) -> None:
        parent = os.path.dirname(failed_path)
        os.chmod(parent, stat.S_IRWXU)
        if os.path.isdir(failed_path) and not os.path.islink(failed_path):
            os.chmod(failed_path, stat.S_IRWXU)
        func(failed_path)

    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path, onerror=make_writable_and_retry)
