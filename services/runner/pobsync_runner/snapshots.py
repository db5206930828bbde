"""The on-disk layout of a host's snapshots and the metadata file. No database here.

    <backup_root>/<host>/                    the host directory
        .lock                                the host lock (pobsync_runner.lock)
        2026-11-27T020000Z/                  a complete snapshot (committed by rename)
            .pobsync-snapshot.json           its metadata
            .pobsync-partial/                only while staging: rsync's --partial-dir
            etc/ home/alice/ ...             the data: each source at its own path
        2026-11-28T020000Z.partial/          a run in progress, or an interrupted one
        2026-11-20T020000Z.deleting/         being deleted by retention (renamed first)

Invariant: a directory with a bare snapshot name is complete; only a finished run is
renamed to it. Anything else under the host directory is not a complete snapshot.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from pathlib import Path
from typing import Any

from pobsync_models.specs import SnapshotName

METADATA_FILE = ".pobsync-snapshot.json"
# Where rsync keeps the received part of a file it was interrupted in (--partial-dir), so
# the next run, seeded from this staging directory, continues the file instead of
# fetching it again. Lives only in staging directories: commit() removes it.
PARTIAL_DIR = ".pobsync-partial"
PARTIAL_SUFFIX = ".partial"
DELETING_SUFFIX = ".deleting"
METADATA_FORMAT = 1


def final_path(host_dir: Path, name: str) -> Path:
    return host_dir / name


def staging_path(host_dir: Path, name: str) -> Path:
    return host_dir / f"{name}{PARTIAL_SUFFIX}"


def deleting_path(host_dir: Path, name: str) -> Path:
    return host_dir / f"{name}{DELETING_SUFFIX}"


def new_snapshot_name(host_dir: Path, now: datetime, taken: set[str] | frozenset[str]) -> str:
    """A UTC-timestamp name unused on disk and in `taken` (-1, -2... within a second)."""
    seq = 0
    while True:
        name = str(SnapshotName.for_time(now, seq))
        if name not in taken and not any(
            p.exists()
            for p in (
                final_path(host_dir, name),
                staging_path(host_dir, name),
                deleting_path(host_dir, name),
            )
        ):
            return name
        seq += 1


def classify_entry(entry_name: str) -> tuple[str, str] | None:
    """(snapshot name, "complete" | "partial" | "deleting") for a host dir entry, else None."""
    for suffix, kind in ((PARTIAL_SUFFIX, "partial"), (DELETING_SUFFIX, "deleting")):
        if entry_name.endswith(suffix):
            name = entry_name[: -len(suffix)]
            return (name, kind) if SnapshotName.is_valid(name) else None
    return (entry_name, "complete") if SnapshotName.is_valid(entry_name) else None


@dataclass(frozen=True)
class SnapshotMeta:
    """What `.pobsync-snapshot.json` holds. Times are ISO 8601 UTC strings."""

    name: str
    host: str
    state: str  # "partial" while running or interrupted, "complete" once committed
    started_at: str
    finished_at: str | None = None
    base_name: str = ""
    seed_name: str = ""  # the interrupted run whose partial this one continued
    rsync_exit_code: int | None = None
    files_total: int | None = None
    files_transferred: int | None = None
    bytes_total: int | None = None
    bytes_transferred: int | None = None
    bytes_received: int | None = None  # over the wire; a resumed file sends only its rest
    sources: tuple[str, ...] = ()
    pobsync_version: str = ""
    format: int = METADATA_FORMAT

    def to_json(self) -> str:
        data = asdict(self)
        data["sources"] = list(self.sources)
        return json.dumps(data, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SnapshotMeta:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["sources"] = tuple(values.get("sources") or ())
        return cls(**values)


def write_metadata(snapshot_dir: Path, meta: SnapshotMeta) -> None:
    """Atomic replace, so a reader sees the old or the new file, never half of one."""
    target = snapshot_dir / METADATA_FILE
    tmp = snapshot_dir / f"{METADATA_FILE}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(meta.to_json())
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(target)


def read_metadata(snapshot_dir: Path) -> SnapshotMeta | None:
    """The metadata, or None when the file is missing or unreadable."""
    try:
        data = json.loads((snapshot_dir / METADATA_FILE).read_text(encoding="utf-8"))
        return SnapshotMeta.from_dict(data)
    except (OSError, ValueError, TypeError):
        return None


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
