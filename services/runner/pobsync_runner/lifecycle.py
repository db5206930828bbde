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
  fetches what is missing and deletes what is stale), and its record is marked
  superseded (its data lives on in the new snapshot, whose metadata names it as
  `seed_name`); retention's "pruned" stays for what retention deleted.
* A run that transferred nothing leaves nothing behind (discard()): no new directory,
  no new record; a seed it took is handed back unchanged, name, record and metadata.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import stat
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from django.db import transaction

from pobsync_models import __version__
from pobsync_models.models import Host, SnapshotRecord
from pobsync_models.specs import HostSpec
from pobsync_runner.dumps import DUMPS_DIR
from pobsync_runner.manifest import MANIFEST_FILE, MANIFEST_TMP
from pobsync_runner.rsync_output import Stats
from pobsync_runner.snapshots import (
    METADATA_FILE,
    PARTIAL_DIR,
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
    seed_meta: SnapshotMeta | None = None  # the seed's own metadata, for discard()


def newest_complete(host: Host, host_dir: Path | None = None) -> SnapshotRecord | None:
    """The newest complete snapshot whose directory is really there (and, given
    host_dir, in it: a host moved to another storage links against nothing left on the
    old one, since hard links cannot cross filesystems), and which is not known to be
    corrupt: a damaged inode must never be linked into the next snapshot."""
    complete = host.snapshots.filter(state=State.COMPLETE).exclude(
        integrity=SnapshotRecord.Integrity.CORRUPT
    )
    for record in complete.order_by("-name").iterator():
        path = Path(record.path)
        if (host_dir is None or path.parent == host_dir) and path.is_dir():
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
        if path.parent != spec.host_dir:  # left on the host's previous storage
            continue
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
    base = newest_complete(host, spec.host_dir)
    seed = pick_seed(host, spec, base)
    staging, final = staging_path(spec.host_dir, name), final_path(spec.host_dir, name)
    seed_meta = read_metadata(Path(seed.path)) if seed is not None else None
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
            SnapshotRecord.objects.filter(pk=seed.pk).update(state=State.SUPERSEDED)
    return StagedSnapshot(record, staging, final, meta, base, seed, seed_meta)


def _stat_fields(stats: Stats) -> dict[str, int | None]:
    return {
        "files_total": stats.files_total,
        "files_transferred": stats.files_transferred,
        "bytes_total": stats.bytes_total,
        "bytes_transferred": stats.bytes_transferred,
    }


def commit(staged: StagedSnapshot, exit_code: int, stats: Stats, now: datetime) -> None:
    """The commit point: metadata says complete, then rename + record update together.

    rsync's partial-dir goes first: a committed snapshot holds only the source's data."""
    remove_partial_dir(staged.staging)
    staged.meta = dataclasses.replace(
        staged.meta,
        state=State.COMPLETE,
        finished_at=_iso(now),
        rsync_exit_code=exit_code,
        bytes_received=stats.bytes_received,
        **_stat_fields(stats),
    )
    write_metadata(staged.staging, staged.meta)

    def record_complete() -> None:
        SnapshotRecord.objects.filter(pk=staged.record.pk).update(
            state=State.COMPLETE,
            path=str(staged.final),
            finished_at=now,
            rsync_exit_code=exit_code,
            **_stat_fields(stats),
        )

    _rename_with(staged.staging, staged.final, record_complete)
    fsync_dir(staged.final.parent)
    staged.record.refresh_from_db()


def _rename_with(src: Path, dst: Path, writes: Callable[[], None]) -> None:
    """`writes` and the rename src -> dst in one transaction: if the rename fails the
    writes roll back; if the commit fails the directory is renamed back."""
    renamed = False
    try:
        with transaction.atomic():
            writes()
            os.rename(src, dst)
            renamed = True
    except BaseException:
        if renamed:
            os.rename(dst, src)
        raise


def remove_partial_dir(staging: Path) -> None:
    """Remove <staging>/.pobsync-partial (rsync's leftovers of unfinished files) without
    following a symlink, should one ever stand there."""
    path = staging / PARTIAL_DIR
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


# Names at a staging directory's top that are pobsync's own, never received data
# (rsync's argv keeps the remote's out of them).
_OWN_TOP_NAMES = frozenset({METADATA_FILE, MANIFEST_FILE, MANIFEST_TMP, DUMPS_DIR, PARTIAL_DIR})
CLOCK_SLACK_NS = 2_000_000_000  # file times come from the kernel's coarse clock


def set_aside_unfinished(staging: Path, since: datetime) -> int:
    """After an interrupted run whose rsync wrote each file at its name
    (rsync.receive_in_place): move every file it had started but not finished into
    <staging>/.pobsync-partial/, under its base name, which is where the next run's
    --partial-dir looks for it. No partial snapshot then holds a file cut short at its
    own name (a restore with --allow-partial would hand it out as whole), and the next
    run, seeded from this directory, continues it instead of fetching it again.

    How a file is known unfinished: rsync sets a received file's mtime (to the
    source's) only after its last write, so a finished file's ctime is the moment of
    that call and differs from its mtime, while a file still being written has the
    time of its last write as both, newer than the run's start. A file set aside by
    mistake is only continued from by the next run, never lost. Returns how many."""
    since_ns = int(since.timestamp() * 1e9) - CLOCK_SLACK_NS
    aside = staging / PARTIAL_DIR
    moved = 0
    stack = [staging]
    while stack:
        directory = stack.pop()
        with os.scandir(directory) as entries:
            for entry in entries:
                if directory == staging and entry.name in _OWN_TOP_NAMES:
                    continue
                if entry.is_dir(follow_symlinks=False):
                    stack.append(Path(entry.path))
                    continue
                st = entry.stat(follow_symlinks=False)
                if not (stat.S_ISREG(st.st_mode) and st.st_mtime_ns == st.st_ctime_ns):
                    continue
                if st.st_mtime_ns < since_ns:
                    continue
                aside.mkdir(mode=0o700, exist_ok=True)
                target = aside / entry.name
                if os.path.lexists(target):
                    os.unlink(entry.path)  # one part per name: this one is dropped
                else:
                    os.rename(entry.path, target)
                moved += 1
    return moved


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


OWN_ENTRIES = frozenset({METADATA_FILE, f"{METADATA_FILE}.tmp"})


def discard(staged: StagedSnapshot, *, remote_untouched: bool) -> bool:
    """Undo stage() for a run that transferred nothing; False (nothing undone) if it
    did transfer something, which then stays a recorded partial.

    Unseeded: the staging directory must hold only pobsync's own metadata (rsync created
    nothing, not even a directory). Seeded: the directory had data before the run, so
    the caller must know rsync never started (`remote_untouched`: ssh failed first);
    it is renamed back to the seed's name with the seed's metadata, and the seed's
    record is partial again, in the transaction that deletes the new record (a failed
    rename rolls it back). Unseeded, the record goes first, then the directory: a crash
    between leaves at worst an empty directory that discover-snapshots records."""
    seed = staged.seed
    if seed is None:
        try:
            entries = set(os.listdir(staged.staging))
        except OSError:
            return False
        if not entries <= OWN_ENTRIES:
            return False
    elif not remote_untouched or staged.seed_meta is None:
        return False
    if seed is None:
        SnapshotRecord.objects.filter(pk=staged.record.pk).delete()
        for entry in entries:
            (staged.staging / entry).unlink(missing_ok=True)
        staged.staging.rmdir()
        return True

    def hand_back() -> None:
        SnapshotRecord.objects.filter(pk=staged.record.pk).delete()
        SnapshotRecord.objects.filter(pk=seed.pk).update(state=State.PARTIAL)

    _rename_with(staged.staging, Path(seed.path), hand_back)
    try:
        write_metadata(Path(seed.path), staged.seed_meta)
    except OSError:
        pass  # the record and the directory agree; discovery copes without metadata
    return True
