"""pobsync's data: one module per concept, re-exported here."""

from __future__ import annotations

from pobsync_models.models.alerts import (
    ApiToken,
    Channel,
    Delivery,
    HostAlertState,
    RoutedEvent,
)
from pobsync_models.models.config import GlobalConfig, RetentionFields
from pobsync_models.models.events import Event
from pobsync_models.models.hosts import Host
from pobsync_models.models.jobs import BackupJob
from pobsync_models.models.restores import RestoreRequest
from pobsync_models.models.runs import BackupRun
from pobsync_models.models.schedules import Schedule
from pobsync_models.models.snapshots import SnapshotRecord
from pobsync_models.models.storages import Storage, StorageSample
from pobsync_models.models.verify import VerifyRun
from pobsync_models.models.workers import WorkerProcess

__all__ = [
    "ApiToken",
    "Channel",
    "Delivery",
    "HostAlertState",
    "RoutedEvent",
    "BackupJob",
    "BackupRun",
    "Event",
    "GlobalConfig",
    "Host",
    "RestoreRequest",
    "RetentionFields",
    "Schedule",
    "SnapshotRecord",
    "Storage",
    "StorageSample",
    "VerifyRun",
    "WorkerProcess",
]
