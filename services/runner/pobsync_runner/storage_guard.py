"""The guards a backup passes before it writes anything to its storage.

mount_guard: the storage's marker file must name this storage (an unmounted disk or a
wrong mount fails the job with the path in its one-line reason, writing nothing).
space_guard: free bytes and inodes minus what this backup is expected to add (the
largest addition among the host's recent runs) must stay above the storage's minimums;
below them the backup does not start (StorageShortError: a queued job waits and is retried,
`pobsync backup` refuses without --force).
Both raise the storage's event (storage_unmounted, storage_full) once per occurrence,
and close the occurrence when the storage is fine again.
"""

from __future__ import annotations

from django.db.models import Max

from pobsync_models.models import BackupRun, Event, Host
from pobsync_models.specs import HostSpec
from pobsync_models.storages import (
    StorageSpec,
    close_incident,
    marker_problem,
    measure,
    open_incident,
    record_space,
    space_shortfall,
)
from pobsync_runner.errors import StorageShortError, StorageUnavailableError

RECENT_RUNS = 5


def mount_guard(spec: HostSpec, host: Host | None = None) -> StorageSpec:
    storage = spec.storage
    if storage is None:
        raise StorageUnavailableError(f"host {spec.name} has no storage")
    problem = marker_problem(storage)
    if problem is not None:
        if storage.pk is not None:
            open_incident(storage, Event.Kind.STORAGE_UNMOUNTED, problem, host)
        raise StorageUnavailableError(problem)
    if storage.pk is not None:
        close_incident(storage, Event.Kind.STORAGE_UNMOUNTED)
    return storage


def expected_growth(host: Host) -> tuple[int, int]:
    """(bytes, inodes) the next backup of host may add: the most any of its recent
    successful runs added; 0 with no history."""
    recent = BackupRun.objects.filter(
        host=host, outcome__in=[BackupRun.Outcome.SUCCESS, BackupRun.Outcome.WARNING]
    ).order_by("-started_at")[:RECENT_RUNS]
    figures = BackupRun.objects.filter(pk__in=list(recent.values_list("pk", flat=True))).aggregate(
        b=Max("bytes_added"), f=Max("files_added")
    )
    return int(figures["b"] or 0), int(figures["f"] or 0)


def space_guard(spec: HostSpec, host: Host) -> None:
    storage = spec.storage
    assert storage is not None  # noqa: S101  (mount_guard ran first)
    space = measure(storage.path)
    if storage.pk is not None:
        record_space(storage, space)
    need_bytes, need_inodes = expected_growth(host)
    short = space_shortfall(storage, space, need_bytes, need_inodes)
    if short is not None:
        if storage.pk is not None:
            open_incident(storage, Event.Kind.STORAGE_FULL, short, host)
        raise StorageShortError(short)
    if storage.pk is not None:
        close_incident(storage, Event.Kind.STORAGE_FULL)


def no_space_message(spec: HostSpec, host: Host) -> str:
    """The one-line reason of a run that hit ENOSPC (or a quota) anyway; raises the
    storage_full event."""
    storage = spec.storage
    name = storage.name if storage else "?"
    message = (
        f"storage {name} ran out of space during the backup (No space left on device "
        f"under {spec.host_dir}): free space, or lower retention, then run again"
    )
    if storage is not None and storage.pk is not None:
        open_incident(storage, Event.Kind.STORAGE_FULL, message, host)
    return message
