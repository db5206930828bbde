"""Space accounting that is true for hard links: what each snapshot added, what deleting
it frees now, and the host's real disk use (each inode counted once).

How, without remembering inodes and without stat()ing every file:
rsync --link-dest links a file into a new snapshot from its base (the previous complete
snapshot) at the same relative path, so the snapshots an inode lives in are a
contiguous run of the host's complete snapshots, plus partials hanging off their base.
Hence, comparing a snapshot S directory by directory with its neighbours by inode
number (`d_ino`, which readdir returns for free):
- added(S): entries of S whose inode is not at the same path in prev(S); directories
  always (they are never hard-linked). Summed over all snapshots: the host's real use.
- exclusive(S): added entries of S whose inode is also in none of its successors (the
  next complete snapshot and any partial based on S): what deleting S frees now.
Only added entries are stat()ed (for their blocks); memory is one directory listing
per tree at a time, flat in the number of files.

Incremental: each record keeps the neighbours it was computed against (scan_key); a
scan walks only snapshots that are new or whose neighbours changed (a new snapshot
changes its predecessor's exclusive figure; a deleted one its neighbours').
Assumption (documented): files hard-linked to each other inside one source tree (rsync
-H) count as separate inodes.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from django.db import transaction
from django.utils import timezone

from pobsync_models.models import Host, SnapshotRecord
from pobsync_runner.snapshots import classify_entry

State = SnapshotRecord.State


@dataclass
class Figures:
    added_bytes: int = 0
    added_inodes: int = 0
    exclusive_bytes: int = 0
    exclusive_inodes: int = 0


@dataclass
class ScanResult:
    walked: list[str] = field(default_factory=list)
    used_bytes: int = 0
    used_inodes: int = 0


def _listing(path: Path | None) -> dict[str, int]:
    """name -> inode of a directory's entries; empty when it is not a directory."""
    if path is None:
        return {}
    try:
        with os.scandir(path) as it:
            return {e.name: e.inode() for e in it}
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return {}


def _blocks(path: str) -> int:
    return os.lstat(path).st_blocks * 512


def compare(snapshot: Path, prev: Path | None, nexts: list[Path]) -> Figures:
    """added / exclusive figures of `snapshot` against its neighbours (see module doc)."""
    out = Figures()
    top = os.lstat(snapshot)
    out.added_bytes = out.exclusive_bytes = top.st_blocks * 512
    out.added_inodes = out.exclusive_inodes = 1
    for _rel, added, exclusive in _walk(snapshot, prev, nexts):
        for path, is_dir in added:
            size = _blocks(path)
            out.added_bytes += size
            out.added_inodes += 1
            if is_dir or path in exclusive:
                out.exclusive_bytes += size
                out.exclusive_inodes += 1
    return out


def _walk(
    root: Path, prev: Path | None, nexts: list[Path]
) -> Iterator[tuple[str, list[tuple[str, bool]], set[str]]]:
    """Per directory of root (never following symlinks): the added entries (path,
    is_dir) and, of those, the non-directory paths that no successor shares."""
    stack = [""]
    while stack:
        rel = stack.pop()
        here = root / rel if rel else root
        try:
            with os.scandir(here) as it:
                entries = [(e.name, e.inode(), e.is_dir(follow_symlinks=False)) for e in it]
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            continue
        before = _listing(prev / rel if prev is not None and rel else prev)
        after = [_listing(n / rel if rel else n) for n in nexts]
        added: list[tuple[str, bool]] = []
        exclusive: set[str] = set()
        for name, ino, is_dir in entries:
            path = os.path.join(here, name)
            if is_dir:
                added.append((path, True))
                stack.append(os.path.join(rel, name) if rel else name)
                continue
            if before.get(name) == ino:
                continue
            added.append((path, False))
            if not any(listing.get(name) == ino for listing in after):
                exclusive.add(path)
        yield rel, added, exclusive


def _chain(host: Host, host_dir: Path) -> tuple[list[SnapshotRecord], dict[str, str | None]]:
    """Records of snapshots present in host_dir, and each one's predecessor's name."""
    records = [
        r
        for r in host.snapshots.filter(state__in=[State.COMPLETE, State.PARTIAL]).order_by("name")
        if Path(r.path).parent == host_dir and Path(r.path).is_dir()
    ]
    prev: dict[str, str | None] = {}
    last_complete: str | None = None
    names = {r.name for r in records}
    for r in records:
        if r.state == State.COMPLETE:
            prev[r.name] = last_complete
            last_complete = r.name
        else:  # a partial hangs off its base when that is still there
            prev[r.name] = r.base_name if r.base_name in names else last_complete
    return records, prev


def scan_host(host: Host, host_dir: Path, *, full: bool = False) -> ScanResult:
    """Bring the host's snapshot figures and its real disk use up to date."""
    records, prev = _chain(host, host_dir)
    by_name = {r.name: r for r in records}
    nexts: dict[str, list[str]] = {r.name: [] for r in records}
    for name, before in prev.items():
        if before is not None:
            nexts[before].append(name)
    result = ScanResult()
    now = timezone.now()
    for r in records:
        key = f"{r.state}:{prev[r.name] or ''}|{','.join(sorted(nexts[r.name]))}"
        if not full and r.scan_key == key and r.added_bytes is not None:
            continue
        figures = compare(
            Path(r.path),
            Path(by_name[prev[r.name]].path) if prev[r.name] else None,
            [Path(by_name[n].path) for n in nexts[r.name]],
        )
        SnapshotRecord.objects.filter(pk=r.pk).update(
            added_bytes=figures.added_bytes,
            added_inodes=figures.added_inodes,
            exclusive_bytes=figures.exclusive_bytes,
            exclusive_inodes=figures.exclusive_inodes,
            scan_key=key[:200],
            scanned_at=now,
        )
        r.added_bytes, r.added_inodes = figures.added_bytes, figures.added_inodes
        result.walked.append(r.name)
    # The host directory itself and what else lives there (the lock file, leftovers).
    used_bytes, used_inodes = _blocks(str(host_dir)), 1
    snapshot_dirs = {Path(r.path).name for r in records}
    with os.scandir(host_dir) as it:
        for e in it:
            if e.name in snapshot_dirs:
                continue
            if e.is_dir(follow_symlinks=False) and classify_entry(e.name):
                size, inodes = _tree_use(Path(e.path))  # e.g. an unrecorded snapshot
            else:
                size, inodes = _blocks(e.path), 1
            used_bytes, used_inodes = used_bytes + size, used_inodes + inodes
    used_bytes += sum(r.added_bytes or 0 for r in records)
    used_inodes += sum(r.added_inodes or 0 for r in records)
    with transaction.atomic():
        Host.objects.filter(pk=host.pk).update(
            disk_used_bytes=used_bytes, disk_used_inodes=used_inodes, disk_scanned_at=now
        )
    result.used_bytes, result.used_inodes = used_bytes, used_inodes
    return result


def _tree_use(root: Path) -> tuple[int, int]:
    """Disk use of a tree outside the chain, counting shared inodes at 1/link count
    each (they live in snapshots too; an approximation only for such leftovers)."""
    total, inodes = 0.0, 0.0
    for dirpath, dirnames, filenames in os.walk(root):
        st = os.lstat(dirpath)
        total, inodes = total + st.st_blocks * 512, inodes + 1
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            st = os.lstat(os.path.join(dirpath, name))
            share = 1 if stat.S_ISDIR(st.st_mode) else st.st_nlink
            total += st.st_blocks * 512 / share
            inodes += 1 / share
    return int(total), int(inodes)


def scan_locked(host: Host, host_dir: Path, *, full: bool = False) -> ScanResult | None:
    """scan_host under the host's lock, None when a backup or prune holds it (the
    snapshots are changing: the next pass scans them)."""
    from pobsync_runner.errors import HostBusy
    from pobsync_runner.lock import HostLock

    if not host_dir.is_dir():
        return None
    try:
        with HostLock(host_dir, purpose="space scan"):
            return scan_host(host, host_dir, full=full)
    except HostBusy:
        return None


def due_hosts(storage_ids: set[int] | None, default_pk: int | None, limit: int = 1):
    """Hosts whose snapshots may have changed since their last scan (a run started
    after it, or never scanned), on the given storages."""
    from django.db.models import F, Q

    from pobsync_models.storages import on_storages

    hosts = Host.objects.filter(snapshots__isnull=False).filter(
        Q(disk_scanned_at__isnull=True) | Q(last_run_at__gt=F("disk_scanned_at"))
    )
    if storage_ids is not None:
        hosts = hosts.filter(on_storages(storage_ids, default_pk))
    return list(hosts.distinct().order_by("disk_scanned_at")[:limit])
