"""Restores as a domain: choosing the snapshot, checking paths and targets, queueing
the restore job, and the typed spec its executor (pobsync_runner.restore) runs.

Invariants:
* Everything a restore will read or write is checked before the job is queued (the
  CLI, the web form) and again by the runner before rsync starts: the snapshot is
  complete (or partial with allow_partial), every path is in it and reached without
  a symlink (pobsync_models.snapfs), and the target is allowed: a directory outside the
  backup root, or a host with a restore root and a target path under it.
* A snapshot named by a queued or running restore is protected from retention
  (protected_snapshots), with the reason.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from django.conf import settings
from django.db import transaction

from pobsync_models import snapfs
from pobsync_models.models import (
    BackupJob,
    GlobalConfig,
    Host,
    RestoreRequest,
    SnapshotRecord,
    Storage,
)
from pobsync_models.queue import enqueue
from pobsync_models.retention import snapshot_sort_key
from pobsync_models.specs import SnapshotName, SshSpec, default_known_hosts_path, host_spec

SnapState = SnapshotRecord.State
ACTIVE_JOB_STATES = (BackupJob.State.QUEUED, BackupJob.State.RUNNING)
ACL_OPTIONS = frozenset({"-A", "--acls"})
XATTR_OPTIONS = frozenset({"-X", "--xattrs"})


class RestoreError(ValueError):
    """A restore that cannot be done as asked; str() is one line saying why."""


def default_restore_key_path() -> Path:
    """The restore key: separate from the read-only backup key (docs/restore.md)."""
    return Path(settings.POBSYNC_SSH_DIR) / "id_restore_ed25519"


# -- choosing the snapshot ----------------------------------------------------------------


def pick_snapshot(
    host: Host, *, name: str | None = None, at: datetime | None = None, allow_partial=False
) -> SnapshotRecord:
    """The snapshot named, else the newest complete one at or before `at`, else the
    newest complete one. A partial is refused unless allow_partial."""
    if name:
        record = host.snapshots.filter(name=name).first()
        if record is None:
            raise RestoreError(f"host {host.name} has no snapshot {name!r} (see the host page)")
        check_snapshot(record, allow_partial)
        return record
    complete = list(host.snapshots.filter(state=SnapState.COMPLETE).values_list("name", flat=True))
    if at is not None:
        complete = [n for n in complete if SnapshotName.is_valid(n) and SnapshotName(n).time <= at]
    if not complete:
        when = f" at or before {at:%Y-%m-%d %H:%M:%S} UTC" if at else ""
        raise RestoreError(f"host {host.name} has no complete snapshot{when}")
    newest = max(complete, key=snapshot_sort_key)
    return host.snapshots.get(name=newest)


def check_snapshot(record: SnapshotRecord, allow_partial: bool) -> None:
    label = f"{record.host.name}/{record.name}"
    if record.state == SnapState.PARTIAL and not allow_partial:
        raise RestoreError(
            f"snapshot {label} is partial (an interrupted backup): add --allow-partial "
            "to restore from it anyway"
        )
    if record.state not in (SnapState.COMPLETE, SnapState.PARTIAL):
        raise RestoreError(f"snapshot {label} is {record.state}: nothing to restore from")
    if not Path(record.path).is_dir():
        raise RestoreError(f"snapshot {label}: directory {record.path} is missing")


def check_paths(record: SnapshotRecord, paths: list[str]) -> list[str]:
    """The paths, normalised ("/etc/nginx"); each must be in the snapshot, reached
    without a symlink. A path inside another one given is dropped (restored anyway)."""
    if not paths:
        raise RestoreError("name at least one path to restore (as on the host: /etc/nginx)")
    root = Path(record.path)
    parsed = []
    for raw in paths:
        try:
            parts = snapfs.parse_path(raw)
            snapfs.lstat(root, parts)
        except snapfs.SnapshotPathError as exc:
            raise RestoreError(f"snapshot {record.host.name}/{record.name}: {exc}") from None
        parsed.append(parts)
    parsed.sort()
    kept: list[tuple[str, ...]] = []
    for parts in parsed:
        if not any(parts[: len(k)] == k for k in kept):
            kept.append(parts)
    return [snapfs.join(p) for p in kept]


# -- targets ------------------------------------------------------------------------------


def check_target_dir(raw: str) -> str:
    """An absolute directory outside every storage (never into a snapshot)."""
    if not raw or "\x00" in raw or not os.path.isabs(raw):
        raise RestoreError(f"--to-dir needs an absolute directory, not {raw!r}")
    target = Path(os.path.realpath(raw))
    config = GlobalConfig.load()
    roots = set(Storage.objects.values_list("path", flat=True))
    if config is not None and config.backup_root:
        roots.add(config.backup_root)
    for raw_root in sorted(roots):
        root = Path(os.path.realpath(raw_root))
        if target == root or root in target.parents or target in root.parents:
            raise RestoreError(
                f"--to-dir {raw} overlaps the backup storage {root}: restore somewhere else"
            )
    if target.exists() and not target.is_dir():
        raise RestoreError(f"--to-dir {raw} exists and is not a directory")
    if not target.parent.is_dir():
        raise RestoreError(f"--to-dir {raw}: its parent directory does not exist")
    return str(target)


def check_target_host(target: Host, target_path: str) -> str:
    """The absolute prefix on `target` to restore under ("/" = the original paths),
    which must lie under the host's restore root."""
    if not target.restore_root:
        raise RestoreError(
            f"host {target.name} has no restore root: run `pobsync ssh-key --restore "
            f"--root DIR --host {target.name}` and install the printed line on it"
        )
    prefix = target_path or "/"
    try:
        parts = snapfs.parse_path(prefix)
    except snapfs.SnapshotPathError as exc:
        raise RestoreError(f"--target-path: {exc}") from None
    root = snapfs.parse_path(target.restore_root)
    if parts[: len(root)] != root:
        where = "the original paths are" if not target_path else f"{prefix} is"
        raise RestoreError(
            f"{where} outside the restore root {target.restore_root} of host {target.name}: "
            f"use --target-path under {target.restore_root}"
        )
    return snapfs.join(parts)


# -- queueing -----------------------------------------------------------------------------


@dataclass(frozen=True)
class RestoreAsk:
    """What somebody asked for, before checks (CLI options, the web form)."""

    paths: tuple[str, ...]
    snapshot: str | None = None
    at: datetime | None = None
    to_dir: str | None = None
    to_host: str | None = None  # a host name; "" = the host the data came from
    target_path: str = ""
    overwrite: bool = False
    dry_run: bool = False
    allow_partial: bool = False


def request_restore(host: Host, ask: RestoreAsk, requested_by: str) -> BackupJob:
    """Check everything, then queue the restore job with its request, in one
    transaction. Raises RestoreError before anything is written."""
    if (ask.to_dir is None) == (ask.to_host is None):
        raise RestoreError("say where to restore to: --to-dir DIR or --to-host [HOST]")
    record = pick_snapshot(host, name=ask.snapshot, at=ask.at, allow_partial=ask.allow_partial)
    check_snapshot(record, ask.allow_partial)
    paths = check_paths(record, list(ask.paths))
    fields: dict[str, object] = {}
    if ask.to_dir is not None:
        if ask.target_path:
            raise RestoreError("--target-path goes with --to-host; --to-dir is the prefix itself")
        fields = {"target": RestoreRequest.Target.DIR, "target_dir": check_target_dir(ask.to_dir)}
    else:
        target = host
        if ask.to_host:
            target = Host.objects.filter(name=ask.to_host).first()
            if target is None:
                raise RestoreError(f"unknown host {ask.to_host!r} (see `pobsync hosts`)")
        fields = {
            "target": RestoreRequest.Target.HOST,
            "target_host": target,
            "target_path": check_target_host(target, ask.target_path),
        }
    with transaction.atomic():
        request = RestoreRequest.objects.create(
            host=host,
            snapshot=record,
            snapshot_name=record.name,
            paths=paths,
            overwrite=ask.overwrite,
            dry_run=ask.dry_run,
            allow_partial=ask.allow_partial,
            requested_by=requested_by[:150],
            **fields,
        )
        return enqueue(host, kind=BackupJob.Kind.RESTORE, restore=request)


def protected_snapshots(host: Host) -> dict[str, str]:
    """Snapshot name -> reason, for each snapshot a queued or running restore reads."""
    rows = RestoreRequest.objects.filter(host=host, job__state__in=ACTIVE_JOB_STATES).values_list(
        "snapshot_name", "job__id", "job__state"
    )
    return {name: f"read by {state} restore job {job_id}" for name, job_id, state in rows}


# -- the executor's typed spec ------------------------------------------------------------


@dataclass(frozen=True)
class RestoreSpec:
    """Everything pobsync_runner.restore needs, resolved and checked."""

    request_id: int
    host: str
    snapshot: str
    snapshot_root: Path
    paths: tuple[str, ...]
    host_dir: Path  # the host's backup directory (its lock lives there)
    overwrite: bool
    dry_run: bool
    acls: bool  # the backup kept ACLs / xattrs (the host's rsync options say so)
    xattrs: bool
    rsync_timeout: int
    target_dir: Path | None = None  # target "dir"
    ssh: SshSpec | None = None  # target "host": the restore key and the target's address
    remote_root: str = "/"  # the target host's restore root (rrsync's directory)
    target_path: str = "/"  # where under it, as an absolute path on the target host

    @property
    def remote_dest(self) -> str:
        """target_path relative to the restore root, as rrsync expects it."""
        rel = os.path.relpath(self.target_path, self.remote_root)
        return "." if rel == "." else rel


def restore_spec(request: RestoreRequest) -> RestoreSpec:
    """Re-check the request against the disk and configuration as they are now."""
    config = GlobalConfig.load()
    if config is None or not config.backup_root:
        raise RestoreError("no global configuration: run `pobsync configure-global` first")
    record = request.snapshot
    if record is None:
        raise RestoreError(f"snapshot {request.snapshot_name} no longer has a record")
    check_snapshot(record, request.allow_partial)
    paths = check_paths(record, list(request.paths))
    options = set(request.host.rsync_options)
    common = {
        "request_id": request.pk,
        "host": request.host.name,
        "snapshot": record.name,
        "snapshot_root": Path(record.path),
        "paths": tuple(paths),
        "host_dir": host_spec(request.host, config).host_dir,
        "overwrite": request.overwrite,
        "dry_run": request.dry_run,
        "acls": bool(options & ACL_OPTIONS),
        "xattrs": bool(options & XATTR_OPTIONS),
        "rsync_timeout": config.rsync_timeout,
    }
    if request.target == RestoreRequest.Target.DIR:
        return RestoreSpec(**common, target_dir=Path(check_target_dir(request.target_dir)))
    target = request.target_host
    if target is None:
        raise RestoreError("the target host of this restore was deleted")
    target_path = check_target_host(target, request.target_path)
    ssh = SshSpec(
        user=target.ssh_user or config.ssh_user,
        address=target.address,
        port=target.ssh_port or config.ssh_port,
        key_path=Path(target.restore_key_path or default_restore_key_path()),
        known_hosts_path=Path(config.known_hosts_path or default_known_hosts_path()),
        connect_timeout=config.connect_timeout,
    )
    return RestoreSpec(
        **common,
        ssh=ssh,
        remote_root=snapfs.join(snapfs.parse_path(target.restore_root)),
        target_path=target_path,
    )
