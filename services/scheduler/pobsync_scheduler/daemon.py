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
        # Schedules whose cron never fires, reported once: pk -> (cron, timezone).
        self.broken: dict[int, tuple[str, str]] = {}

    def process_one(self) -> bool:
        reaped = reap()
        if reaped.total:
            self.say(f"reaped expired leases: {reaped.summary()}")
        result = tick(self.fixed_now or timezone.now(), known_broken=self.broken)
        if result.enqueued or result.initialised or result.broken:
            self.say(f"tick: {result.summary()}")
        for pk, (cron, tz) in result.broken.items():
            self.say(
                f"schedule {pk}: cron {cron!r} ({tz}) never fires; it is skipped until "
                "its cron or time zone is edited"
            )
        self.broken.update(result.broken)
        registry.forget_stale()
        return result.more  # a truncated tick goes again at once
