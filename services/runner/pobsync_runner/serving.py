"""Which storages a runner serves, and telling the others (the registry row).

`pobsync runner --storage NAME` (repeatable) serves exactly those storages; without it
a runner serves every storage whose marker file it sees, checked again every
RECHECK_SECONDS, so a disk mounted later is picked up and an unmounted one dropped.
The served names go on the runner's WorkerProcess row, which is how the queue page,
`pobsync jobs` and /api/jobs/ tell that no live runner serves a job's storage.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from pobsync_models.models import GlobalConfig, Storage, WorkerProcess
from pobsync_models.specs import host_spec
from pobsync_models.storages import (
    marker_problem,
    measure,
    record_space,
    spec_of,
    visible_storages,
)
from pobsync_runner.spacescan import due_hosts, scan_locked

RECHECK_SECONDS = 60.0


class UnknownStorageError(ValueError):
    pass


class Service:
    def __init__(self, names: Sequence[str] | None = None) -> None:
        self.names = list(dict.fromkeys(names)) if names else None
        self.ids: set[int] | None = set()  # None: no storage configured, no filter
        self.served: list[str] = []
        self.next_check = 0.0

    def check_names(self) -> None:
        """UnknownStorageError naming the first --storage that is not configured."""
        if not self.names:
            return
        known = set(Storage.objects.filter(name__in=self.names).values_list("name", flat=True))
        for name in self.names:
            if name not in known:
                raise UnknownStorageError(f"unknown storage {name!r} (see `pobsync storage list`)")

    def refresh(self, worker_id: str, *, force: bool = False) -> bool:
        """Re-resolve the served storages when due; True when the set changed."""
        now = time.monotonic()
        if not force and now < self.next_check:
            return False
        self.next_check = now + RECHECK_SECONDS
        if self.names is None:
            storages = visible_storages()
        else:
            storages = list(Storage.objects.filter(name__in=self.names))
        self.measure(storages)
        ids: set[int] | None = {s.pk for s in storages}
        if self.names is None and not storages and not Storage.objects.exists():
            ids = None  # nothing configured yet: jobs fail with "configure-global first"
        served = sorted(s.name for s in storages)
        changed = ids != self.ids or served != self.served
        self.ids, self.served = ids, served
        WorkerProcess.objects.filter(worker_id=worker_id).update(storages=served)
        return changed

    def measure(self, storages: list[Storage]) -> None:
        """Record the space figures of the served storages that are mounted (one sample
        per storage and day is kept: growth per day, days until full)."""
        for storage in storages:
            spec = spec_of(storage)
            if marker_problem(spec) is None:
                record_space(spec, measure(spec.path))

    def scan_one(self) -> str | None:
        """On an idle pass: bring one host's space figures up to date (incremental), if
        one on a served storage changed since its last scan. Returns its name."""
        config = GlobalConfig.load()
        if config is None:
            return None
        default_pk = Storage.objects.filter(is_default=True).values_list("pk", flat=True).first()
        for host in due_hosts(self.ids, default_pk, limit=3):
            spec = host_spec(host, config)
            if spec.storage is None or marker_problem(spec.storage) is not None:
                continue
            if scan_locked(host, spec.host_dir) is not None:
                return host.name
        return None
