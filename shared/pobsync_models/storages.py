"""Storages: named backup locations, their marker files, space figures and incidents.

Invariants:
- Every path a job touches comes from the host's storage through specs.host_dir();
  storage_of() is the one place a host is mapped to its storage (NULL = the default).
- The default storage mirrors GlobalConfig.backup_root (GlobalConfig.save keeps them
  in step), so `configure-global --backup-root` still moves the default location.
- A storage is usable by a process only when the marker file at its root names the
  storage's marker_id (marker_problem() returns the reason otherwise): an unmounted
  disk or a wrong mount never receives a write.
- An incident (unmounted, full) is open while Storage.<field>_since is set; its start
  time makes the event key, so each occurrence is one event however many runners see it.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone

from pobsync_models.events import record_event
from pobsync_models.models import BackupJob, Event, Host, Storage, WorkerProcess
from pobsync_models.models.storages import DEFAULT_STORAGE_NAME
from pobsync_models.units import format_bytes

MARKER_FILE = ".pobsync-storage"
_UNITS = {"": 1, "B": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
_THRESHOLD_RE = re.compile(r"^([0-9]+(?:\.[0-9]+)?)\s*(%|[KMGT]i?B?|B)?$", re.IGNORECASE)
LIVE_RUNNER_SECONDS = 180  # a runner unseen for longer serves nothing (registry.DEFAULT_MAX_AGE)


@dataclass(frozen=True)
class StorageSpec:
    """What the engine needs to know about the storage a host lives on."""

    name: str
    path: Path
    marker_id: str
    min_free_space: str = "0"
    min_free_inodes: str = "0"
    pk: int | None = None

    @property
    def marker_path(self) -> Path:
        return self.path / MARKER_FILE


@dataclass(frozen=True)
class Space:
    total_bytes: int
    free_bytes: int
    total_inodes: int
    free_inodes: int


# -- which storage -------------------------------------------------------------------


def default_storage() -> Storage | None:
    return Storage.objects.filter(is_default=True).first()


def sync_default_storage(backup_root: str) -> Storage:
    """Make the default storage's path `backup_root` (creating the storage if needed)."""
    with transaction.atomic():
        storage = Storage.objects.select_for_update().filter(is_default=True).first()
        if storage is None:
            name = DEFAULT_STORAGE_NAME
            if Storage.objects.filter(name=name).exists():
                name = f"{DEFAULT_STORAGE_NAME}-root"
            return Storage.objects.create(name=name, path=backup_root, is_default=True)
        if storage.path != backup_root:
            storage.path = backup_root
            storage.save(update_fields=["path", "updated_at"])
        return storage


def storage_of(host: Host) -> Storage | None:
    """The storage `host` lives on: its own, else the default (None: none configured)."""
    if host.storage_id is not None:
        return host.storage
    return default_storage()


def job_storage_id(host_storage_id: int | None) -> int | None:
    """The storage id a job of a host with this storage_id carries (BackupJob.storage):
    its own, else the default's (None only while no storage exists)."""
    if host_storage_id is not None:
        return host_storage_id
    return Storage.objects.filter(is_default=True).values_list("pk", flat=True).first()


def follow_host_storage(host: Host) -> int:
    """Point the host's queued jobs at its storage (after the host moved); running and
    finished jobs keep the storage they ran on. Returns the number of jobs moved."""
    storage_id = job_storage_id(host.storage_id)
    return (
        BackupJob.objects.filter(host_id=host.pk, state=BackupJob.State.QUEUED)
        .exclude(storage_id=storage_id)
        .update(storage_id=storage_id)
    )


def spec_of(storage: Storage) -> StorageSpec:
    return StorageSpec(
        name=storage.name,
        path=Path(storage.path),
        marker_id=storage.marker_id,
        min_free_space=storage.min_free_space,
        min_free_inodes=storage.min_free_inodes,
        pk=storage.pk,
    )


# -- the marker file -----------------------------------------------------------------


def write_marker(storage: Storage) -> Path:
    """Write (or rewrite) the marker at the storage's root; OSError if it cannot."""
    path = Path(storage.path) / MARKER_FILE
    tmp = path.with_name(MARKER_FILE + ".tmp")
    data = {"storage": storage.name, "marker_id": storage.marker_id}
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(json.dumps(data, sort_keys=True) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(path)
    return path


def read_marker(root: Path) -> dict | None:
    """The marker's content, None when missing or unreadable. Never follows a symlink:
    a marker must be a plain file on the storage itself."""
    try:
        fd = os.open(root / MARKER_FILE, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        with os.fdopen(fd, encoding="utf-8") as fh:
            data = json.loads(fh.read(4096))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def marker_problem(spec: StorageSpec) -> str | None:
    """Why nothing may be written to this storage now, or None when it is the right disk."""
    if not spec.path.is_dir():
        return f"storage {spec.name}: {spec.path} does not exist (is the disk mounted?)"
    marker = read_marker(spec.path)
    if marker is None:
        return (
            f"storage {spec.name}: no marker file {spec.marker_path} (is the disk mounted? "
            f"if this is the right disk, run `pobsync storage mark {spec.name}`)"
        )
    if marker.get("marker_id") != spec.marker_id:
        other = str(marker.get("storage") or "?")[:64]
        return (
            f"storage {spec.name}: the disk at {spec.path} belongs to storage {other!r}, "
            "not this one (wrong mount?)"
        )
    return None


def visible_storages() -> list[Storage]:
    """Every storage whose marker this process sees (a runner's default service)."""
    return [s for s in Storage.objects.all() if marker_problem(spec_of(s)) is None]


# -- space ---------------------------------------------------------------------------


def parse_threshold(value: str, total: int) -> int:
    """'5%' of total, or an absolute amount ('20G', '100000'); '' or '0' is no minimum."""
    m = _THRESHOLD_RE.match((value or "0").strip())
    if not m:
        raise ValueError(f"{value!r} is not a minimum")
    amount, unit = float(m.group(1)), (m.group(2) or "").upper()
    if unit == "%":
        return int(total * amount / 100)
    return int(amount * _UNITS[unit[:1]])


def measure(path: Path) -> Space:
    """statvfs figures: free is what an unprivileged writer may still use."""
    st = os.statvfs(path)
    return Space(
        total_bytes=st.f_blocks * st.f_frsize,
        free_bytes=st.f_bavail * st.f_frsize,
        total_inodes=st.f_files,
        free_inodes=st.f_favail,
    )


def record_space(spec: StorageSpec, space: Space, now: datetime | None = None) -> None:
    """Store the latest figures on the storage and today's sample (growth per day)."""
    from pobsync_models.models import StorageSample

    now = now or timezone.now()
    Storage.objects.filter(pk=spec.pk).update(
        total_bytes=space.total_bytes,
        free_bytes=space.free_bytes,
        total_inodes=space.total_inodes,
        free_inodes=space.free_inodes,
        measured_at=now,
    )
    StorageSample.objects.update_or_create(
        storage_id=spec.pk,
        day=now.date(),
        defaults={
            "used_bytes": space.total_bytes - space.free_bytes,
            "free_bytes": space.free_bytes,
            "used_inodes": space.total_inodes - space.free_inodes,
            "free_inodes": space.free_inodes,
        },
    )


def space_shortfall(
    spec: StorageSpec, space: Space, need_bytes: int = 0, need_inodes: int = 0
) -> str | None:
    """Why a backup needing `need_*` would take the storage below its minimums, or None."""
    min_bytes = parse_threshold(spec.min_free_space, space.total_bytes)
    min_inodes = parse_threshold(spec.min_free_inodes, space.total_inodes)
    if space.free_bytes - need_bytes < min_bytes:
        return (
            f"storage {spec.name} has {format_bytes(space.free_bytes)} free; the minimum is "
            f"{format_bytes(min_bytes)} ({spec.min_free_space}) plus an estimated "
            f"{format_bytes(need_bytes)} for this backup"
        )
    if space.total_inodes and space.free_inodes - need_inodes < min_inodes:
        return (
            f"storage {spec.name} has {space.free_inodes} free inodes; the minimum is "
            f"{min_inodes} ({spec.min_free_inodes}) plus an estimated {need_inodes} for "
            "this backup"
        )
    return None


# -- incidents -> events ---------------------------------------------------------------

_INCIDENT_FIELD = {
    Event.Kind.STORAGE_UNMOUNTED: "unmounted_since",
    Event.Kind.STORAGE_FULL: "full_since",
}


def open_incident(spec: StorageSpec, kind: str, message: str, host: Host | None = None) -> None:
    """Record the event of this occurrence once, however many processes detect it."""
    field = _INCIDENT_FIELD[kind]
    now = timezone.now()
    Storage.objects.filter(pk=spec.pk, **{f"{field}__isnull": True}).update(**{field: now})
    since = Storage.objects.filter(pk=spec.pk).values_list(field, flat=True).first() or now
    key = f"{kind.replace('_', '-')}:{spec.name}:{since.strftime('%Y%m%dT%H%M%S.%f')}"
    record_event(kind, key, message, subject=spec.name, host=host, details={"path": str(spec.path)})


def close_incident(spec: StorageSpec, kind: str) -> None:
    field = _INCIDENT_FIELD[kind]
    Storage.objects.filter(pk=spec.pk, **{f"{field}__isnull": False}).update(**{field: None})


# -- why a queued job waits ------------------------------------------------------------


def served_storage_names(now: datetime | None = None) -> set[str]:
    """Storages some live runner serves (its registry row was seen recently)."""
    now = now or timezone.now()
    live = WorkerProcess.objects.filter(
        kind=WorkerProcess.Kind.RUNNER,
        last_seen_at__gte=now - timedelta(seconds=LIVE_RUNNER_SECONDS),
    ).values_list("storages", flat=True)
    return {name for names in live for name in (names or [])}


def running_per_storage() -> dict[int | None, int]:
    """Running jobs per host storage id (None: hosts on the default storage)."""
    rows = (
        BackupJob.objects.filter(state=BackupJob.State.RUNNING)
        .values("host__storage_id")
        .annotate(n=Count("id"))
    )
    return {r["host__storage_id"]: r["n"] for r in rows}


def wait_reasons(jobs: Iterable[tuple[int, int | None]]) -> dict[int, str]:
    """job id -> why that queued job waits on its storage, for (job id, host storage id)
    pairs. Three queries whatever the number of jobs."""
    storages = {s.pk: s for s in Storage.objects.all()}
    default = next((s for s in storages.values() if s.is_default), None)
    served = served_storage_names()
    running = running_per_storage()
    if default is not None:
        running[default.pk] = running.get(default.pk, 0) + running.pop(None, 0)
    reasons: dict[int, str] = {}
    for job_id, storage_id in jobs:
        storage = storages.get(storage_id) if storage_id is not None else default
        if storage is None:
            continue
        if storage.name not in served:
            reasons[job_id] = f"waiting: no live runner serves storage {storage.name}"
        elif storage.max_running_jobs and running.get(storage.pk, 0) >= storage.max_running_jobs:
            reasons[job_id] = (
                f"waiting: storage {storage.name} is at its cap "
                f"({storage.max_running_jobs} running)"
            )
    return reasons


@dataclass(frozen=True)
class ClaimScope:
    """What one claim may take: `allowed` storage ids (None: no storage filter) and the
    caps to re-check inside the claim transaction (storage id -> max running jobs)."""

    allowed: set[int] | None
    capped: dict[int, int]
    default_pk: int | None


def job_wait_reason(job: BackupJob, reasons: dict[int, str]) -> str:
    """What a queued job waits for: no runner / cap (from wait_reasons) or the space
    guard's "waiting: ..." its last runner wrote; "" for a job not waiting."""
    if job.state != BackupJob.State.QUEUED:
        return ""
    if job.pk in reasons:
        return reasons[job.pk]
    return job.error if job.error.startswith("waiting: ") else ""


def claim_scope(served: Iterable[int] | None) -> ClaimScope:
    """For a runner serving `served` (None: every storage): the storages not at their
    cap. One query when no storage is capped, three when one is."""
    rows = list(Storage.objects.values_list("pk", "max_running_jobs", "is_default"))
    capped = {pk: cap for pk, cap, _ in rows if cap}
    default_pk = next((pk for pk, _, is_default in rows if is_default), None)
    if served is None and not capped:
        return ClaimScope(None, {}, default_pk)
    allowed = {pk for pk, _, _ in rows} if served is None else set(served)
    if capped:
        running = running_per_storage()
        if default_pk is not None:
            running[default_pk] = running.get(default_pk, 0) + running.pop(None, 0)
        allowed -= {pk for pk, cap in capped.items() if running.get(pk, 0) >= cap}
    return ClaimScope(allowed, capped, default_pk)


def on_storages(storage_ids: set[int], default_pk: int | None, prefix: str = "") -> Q:
    """Hosts or jobs (their storage column) on one of storage_ids, or with prefix
    "host__", jobs whose host is; a NULL storage is the default."""
    on = Q(**{f"{prefix}storage_id__in": storage_ids})
    if default_pk in storage_ids:
        on |= Q(**{f"{prefix}storage__isnull": True})
    return on


def cap_reached(host_id: int, scope: ClaimScope) -> bool:
    """Inside the claim transaction, after the host row: is the host's storage at its
    cap? Locks the storage row first (lock order host, storage, job), so concurrent
    claims on one capped storage are serialised and the cap is exact."""
    if not scope.capped:
        return False
    storage_id = Host.objects.filter(pk=host_id).values_list("storage_id", flat=True).first()
    storage_id = storage_id or scope.default_pk
    cap = scope.capped.get(storage_id)
    if not cap:
        return False
    list(Storage.objects.select_for_update().filter(pk=storage_id).values_list("pk"))
    running = BackupJob.objects.filter(
        on_storages({storage_id}, scope.default_pk, "host__"), state=BackupJob.State.RUNNING
    ).count()
    return running >= cap


# -- growth ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Usage:
    growth_per_day: int | None  # bytes per day over the last GROWTH_DAYS (None: < 2 samples)
    days_until_full: float | None  # at that rate, from the latest free figure


GROWTH_DAYS = 30


def usage_from_samples(samples: list[tuple], free_bytes: int | None) -> Usage:
    """samples: (day, used_bytes) oldest first, within the window."""
    if len(samples) < 2:
        return Usage(None, None)
    (first_day, first_used), (last_day, last_used) = samples[0], samples[-1]
    days = (last_day - first_day).days or 1
    growth = int((last_used - first_used) / days)
    if growth <= 0 or free_bytes is None:
        return Usage(growth, None)
    return Usage(growth, free_bytes / growth)


def storage_usage(storage: Storage, today=None) -> Usage:
    today = today or timezone.now().date()
    samples = list(
        storage.samples.filter(day__gte=today - timedelta(days=GROWTH_DAYS))
        .order_by("day")
        .values_list("day", "used_bytes")
    )
    return usage_from_samples(samples, storage.free_bytes)


def storage_summaries(today=None) -> list[tuple[Storage, Usage]]:
    """Every storage with its growth figures, in two queries (dashboard)."""
    from pobsync_models.models import StorageSample

    today = today or timezone.now().date()
    storages = list(Storage.objects.order_by("name"))
    samples: dict[int, list[tuple]] = {s.pk: [] for s in storages}
    for storage_id, day, used in (
        StorageSample.objects.filter(day__gte=today - timedelta(days=GROWTH_DAYS))
        .order_by("storage_id", "day")
        .values_list("storage_id", "day", "used_bytes")
    ):
        samples.setdefault(storage_id, []).append((day, used))
    return [(s, usage_from_samples(samples[s.pk], s.free_bytes)) for s in storages]
