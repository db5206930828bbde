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
Only directories and added entries are stat()ed (for their blocks); every directory is
read once per snapshot of the window, and memory holds one directory's listing of each
snapshot at a time: flat in the number of files. (Summing size / link count over all
paths would give the host total in flat memory too, but must stat every path and
cannot say what one snapshot frees; readdir's inode numbers answer both.)

Incremental: each record keeps the neighbours it was computed against (scan_key); a
scan walks only snapshots that are new or whose neighbours changed (a new snapshot
changes its predecessor's exclusive figure; a deleted one its neighbours').
Assumption (documented): files hard-linked to each other inside one source tree (rsync
-H) count as separate inodes.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from django.db import transaction
from django.utils import timezone

from pobsync_models.models import Host, SnapshotRecord
from pobsync_models.snapfs import is_incoming_name
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


def _listing(path: str) -> list[tuple[str, int, bool]]:
    """(name, inode, is_dir) of a directory's entries from readdir alone (no stat);
    empty when it is not a directory (gone, or absent from this snapshot)."""
    try:
        with os.scandir(path) as it:
            return [
                (e.name, e.inode(), e.is_dir(follow_symlinks=False))
                for e in it
                if not is_incoming_name(e.name)  # a running backup's, not the snapshot's
            ]
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return []


def _inodes(path: str) -> dict[str, int]:
    """name -> inode of a neighbour's directory (readdir only); empty when absent."""
    try:
        with os.scandir(path) as it:
            return {e.name: e.inode() for e in it if not is_incoming_name(e.name)}
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return {}


def _blocks(path: str) -> int:
    return os.lstat(path).st_blocks * 512


def figures_of(
    targets: list[str],
    roots: dict[str, str],
    prev: dict[str, str | None],
    nexts: dict[str, list[str]],
) -> dict[str, Figures]:
    """added / exclusive figures of each target snapshot against its neighbours (see
    the module doc). One walk over the directories of the targets; each directory is
    read once in every snapshot of the window (targets and their neighbours), so a full
    scan reads each directory once, and memory holds one directory of each."""
    window = list(
        dict.fromkeys(
            [
                *targets,
                *(p for t in targets if (p := prev[t])),
                *(n for t in targets for n in nexts[t]),
            ]
        )
    )
    out = {}
    for t in targets:
        size = _blocks(roots[t])
        out[t] = Figures(size, 1, size, 1)
    stack = [""]
    while stack:
        rel = stack.pop()
        suffix = "/" + rel if rel else ""
        listed = {name: _listing(roots[name] + suffix) for name in targets}
        inodes = {
            name: {e[0]: e[1] for e in listed[name]}
            if name in listed
            else _inodes(roots[name] + suffix)
            for name in window
        }
        subdirs: set[str] = set()
        for t in targets:
            before = inodes[prev[t]] if prev[t] else {}
            after = [inodes[n] for n in nexts[t]]
            here = roots[t] + suffix + "/"
            fig = out[t]
            for name, ino, is_dir in listed[t]:
                if is_dir:  # directories are never hard-linked: always this snapshot's own
                    subdirs.add(name)
                    size = _blocks(here + name)
                    fig.added_bytes += size
                    fig.exclusive_bytes += size
                    fig.added_inodes += 1
                    fig.exclusive_inodes += 1
                    continue
                if before.get(name) == ino:
                    continue
                size = _blocks(here + name)
                fig.added_bytes += size
                fig.added_inodes += 1
                if not any(listing.get(name) == ino for listing in after):
                    fig.exclusive_bytes += size
                    fig.exclusive_inodes += 1
        stack.extend(rel + "/" + d if rel else d for d in subdirs)
    return out


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
    keys = {
        r.name: f"{r.state}:{prev[r.name] or ''}|{','.join(sorted(nexts[r.name]))}"[:200]
        for r in records
    }
    targets = [
        r.name for r in records if full or r.scan_key != keys[r.name] or r.added_bytes is None
    ]
    if targets:
        roots = {r.name: r.path for r in records}
        figures = figures_of(targets, roots, prev, nexts)
        for name in targets:
            f, r = figures[name], by_name[name]
            SnapshotRecord.objects.filter(pk=r.pk).update(
                added_bytes=f.added_bytes,
                added_inodes=f.added_inodes,
                exclusive_bytes=f.exclusive_bytes,
                exclusive_inodes=f.exclusive_inodes,
                scan_key=keys[name],
                scanned_at=now,
            )
            r.added_bytes, r.added_inodes = f.added_bytes, f.added_inodes
    result.walked = targets
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
