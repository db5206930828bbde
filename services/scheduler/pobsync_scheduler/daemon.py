"""The scheduler process: each pass reaps expired leases and runs one tick."""

from __future__ import annotations

from datetime import datetime

from django.utils import timezone

from pobsync_models import registry
from pobsync_models.daemon import Daemon
from pobsync_models.models import WorkerProcess
from pobsync_models.queue import reap
from pobsync_scheduler.tick import tick


class Scheduler(Daemon):
    kind = WorkerProcess.Kind.SCHEDULER

    def __init__(self, *, interval: float, now: datetime | None = None, **kw) -> None:
        super().__init__(interval=interval, **kw)
        self.fixed_now = now  # --now, for tests and what-if runs with --once

    def process_one(self) -> bool:
        reaped = reap()
        if reaped.total:
            self.say(
                f"reaped expired leases: {reaped.requeued} requeued, {reaped.failed} failed, "
                f"{reaped.hosts_repaired} hosts repaired"
            )
        result = tick(self.fixed_now or timezone.now())
        if result.enqueued or result.initialised or result.broken:
            self.say(f"tick: {result.summary()}")
        for pk in result.broken:
            self.say(f"schedule {pk}: its cron expression never fires; fix or disable it")
        registry.forget_stale()
        return result.more  # a truncated tick goes again at once
