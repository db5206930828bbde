"""discover-snapshots: make SnapshotRecord agree with what is on disk. Idempotent.

For each host directory under the backup root:
* a directory with a bare snapshot name is a complete snapshot; <name>.partial is a
  partial one; <name>.deleting is ignored (a deletion in progress);
* each is upserted from its metadata file; a snapshot without (readable) metadata gets
  a record with has_metadata=False, its times taken from its name and no base;
* base records are linked by name (base_name -> base FK) once both are known;
* complete or partial records whose directory is gone become "missing".

Reads one metadata file per snapshot and writes with bulk queries: a thousand
snapshots take well under a second.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from django.db import transaction

from pobsync_models.models import Host, SnapshotRecord
from pobsync_models.specs import SnapshotName, host_dir
from pobsync_runner.snapshots import classify_entry, read_metadata

State = SnapshotRecord.State
SYNCED_FIELDS = (
    "path",
    "state",
    "started_at",
    "finished_at",
    "base_name",
    "rsync_exit_code",
    "files_total",
    "files_transferred",
    "bytes_total",
    "bytes_transferred",
    "pobsync_version",
    "has_metadata",
)


@dataclass
class DiscoveryReport:
    created: int = 0
    updated: int = 0
    missing: int = 0
    linked: int = 0
    unknown_dirs: list[str] = field(default_factory=list)

    def changed(self) -> bool:
        return bool(self.created or self.updated or self.missing or self.linked)


def _when(value: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if value else None
    except ValueError:
        return None


def _values_from_disk(name: str, kind: str, path: Path) -> dict[str, Any]:
    meta = read_metadata(path)
    state = State.COMPLETE if kind == "complete" else State.PARTIAL
    if meta is None:
        return {
            "path": str(path),
            "state": state,
            "started_at": SnapshotName(name).time,
            "finished_at": None,
            "base_name": "",
            "rsync_exit_code": None,
            "files_total": None,
            "files_transferred": None,
            "bytes_total": None,
            "bytes_transferred": None,
            "pobsync_version": "",
            "has_metadata": False,
        }
    return {
        "path": str(path),
        "state": state,
        "started_at": _when(meta.started_at) or SnapshotName(name).time,
        "finished_at": _when(meta.finished_at),
        "base_name": meta.base_name,
        "rsync_exit_code": meta.rsync_exit_code,
        "files_total": meta.files_total,
        "files_transferred": meta.files_transferred,
        "bytes_total": meta.bytes_total,
        "bytes_transferred": meta.bytes_transferred,
        "pobsync_version": meta.pobsync_version[:32],
        "has_metadata": True,
    }


def scan_host_dir(host_dir: Path) -> dict[str, tuple[str, Path]]:
    """snapshot name -> (kind, path) for complete and partial snapshot directories.

    When both <name> and <name>.partial exist the complete one wins.
    """
    found: dict[str, tuple[str, Path]] = {}
    if not host_dir.is_dir():
        return found
    for entry in os.scandir(host_dir):
        parsed = classify_entry(entry.name)
        if parsed is None or parsed[1] == "deleting" or not entry.is_dir(follow_symlinks=False):
            continue
        name, kind = parsed
        if kind == "complete" or name not in found:
            found[name] = (kind, Path(entry.path))
    return found


def discover_host(host: Host, host_dir: Path, report: DiscoveryReport) -> None:
    on_disk = scan_host_dir(host_dir)
    records = {r.name: r for r in host.snapshots.all()}
    to_create, to_update = [], []
    for name, (kind, path) in sorted(on_disk.items()):
        values = _values_from_disk(name, kind, path)
        record = records.get(name)
        if record is None:
            to_create.append(SnapshotRecord(host=host, name=name, **values))
            continue
        if any(getattr(record, k) != v for k, v in values.items()):
            for k, v in values.items():
                setattr(record, k, v)
            if record.state != State.PRUNED:
                record.pruned_at = None
            to_update.append(record)
    for name, record in records.items():
        if name not in on_disk and record.state in (State.COMPLETE, State.PARTIAL):
            record.state = State.MISSING
            to_update.append(record)
            report.missing += 1
    with transaction.atomic():
        SnapshotRecord.objects.bulk_create(to_create, batch_size=500)
        if to_update:
            SnapshotRecord.objects.bulk_update(
                to_update, [*SYNCED_FIELDS, "pruned_at"], batch_size=500
            )
        report.created += len(to_create)
        report.updated += len(to_update) - sum(1 for r in to_update if r.state == State.MISSING)
        report.linked += link_bases(host)


def link_bases(host: Host) -> int:
    """Set the base FK of records whose base_name names a known record of the host."""
    ids = dict(host.snapshots.values_list("name", "id"))
    unlinked = list(host.snapshots.filter(base__isnull=True).exclude(base_name=""))
    changed = [r for r in unlinked if r.base_name in ids]
    for record in changed:
        record.base_id = ids[record.base_name]
    if changed:
        SnapshotRecord.objects.bulk_update(changed, ["base"], batch_size=500)
    return len(changed)


def discover(hosts: Iterable[Host], backup_root: Path) -> DiscoveryReport:
    report = DiscoveryReport()
    hosts = list(hosts)
    for host in hosts:
        discover_host(host, host_dir(backup_root, host.name), report)
    return report


def unknown_host_dirs(backup_root: Path, known: set[str]) -> list[str]:
    """Directories under the backup root that belong to no configured host."""
    if not backup_root.is_dir():
        return []
    return sorted(
        e.name
        for e in os.scandir(backup_root)
        if e.is_dir(follow_symlinks=False) and e.name not in known and not e.name.startswith(".")
    )
