"""The scheduler process: each pass reaps expired leases, runs one tick, then the
notification pass (pobsync_models.alerts: events and deliveries; a Sender thread sends
them beside the loop, or inline with --once).

Passes start at every minute boundary (and at least every --interval seconds): every
cron slot falls on a minute boundary, so a slot is enqueued a fraction of a second after
it, not up to an interval later as with passes counted from the scheduler's own start.
"""

from __future__ import annotations

import threading
from datetime import datetime

from django.utils import timezone

from pobsync_models import registry
from pobsync_models.alerts import notify
from pobsync_models.daemon import Daemon
from pobsync_models.global_verify import sync_global_verify
from pobsync_models.models import WorkerProcess
from pobsync_models.queue import reap, retrying
from pobsync_scheduler.tick import tick

# Wake this long after the boundary, so the slot is already due (next_run_at <= now)
# by the clock the tick reads.
SLOT_MARGIN = 0.05


def seconds_to_next_pass(now: datetime, interval: float) -> float:
    """Sleep until just past the next minute boundary, or `interval` if that is sooner.

    Every cron slot is on a minute boundary (UTC offsets are whole minutes), so ticking
    there enqueues a slot within a pass's duration of it. A pass woken a hair early
    (before the boundary) gets a wait of a few milliseconds, not a skipped minute."""
    into_minute = now.second + now.microsecond / 1_000_000
    return min(interval, 60.0 - into_minute + SLOT_MARGIN)


class Scheduler(Daemon):
    kind = WorkerProcess.Kind.SCHEDULER

    def __init__(
        self, *, interval: float, now: datetime | None = None, send_inline: bool = False, **kw
    ) -> None:
        super().__init__(interval=interval, **kw)
        self.send_inline = send_inline  # --once: send deliveries in the pass itself
        self.fixed_now = now  # --now, for tests and what-if runs with --once
        # Schedules whose cron never fires, reported once: pk -> (cron, timezone).
        self.broken: dict[int, tuple[str, str]] = {}

    def run(self, *, once: bool = False) -> None:
        """With --loop, a Sender thread sends deliveries beside the passes; it stops
        when the loop does. With --once (or send_inline) each pass sends inline."""
        if once or self.send_inline:
            self.send_inline = True
            super().run(once=once)
            return
        stop = threading.Event()
        sender = notify.Sender(stop)
        sender.start()
        try:
            super().run(once=once)
        finally:
            stop.set()
            sender.join(timeout=5)

    def idle_wait(self) -> float:
        return seconds_to_next_pass(timezone.now(), self.interval)

    def process_one(self) -> bool:
        reaped = reap()
        if reaped.total:
            self.say(f"reaped expired leases: {reaped.summary()}")
        synced = retrying(sync_global_verify)  # hosts added since get the global verify
        if synced.changed:
            self.say(synced.summary())
        result = tick(self.fixed_now or timezone.now(), known_broken=self.broken)
        if result.enqueued or result.initialised or result.broken:
            self.say(f"tick: {result.summary()}")
        for pk, (cron, tz) in result.broken.items():
            self.say(
                f"schedule {pk}: cron {cron!r} ({tz}) never fires; it is skipped until "
                "its cron or time zone is edited"
            )
        self.broken.update(result.broken)
        # -- alerts (issue 14): never raises, never blocks on a channel --------------
        now = self.fixed_now or timezone.now()
        alerts = notify.evaluate(now)
        if self.send_inline:
            notify.send_due(now, result=alerts)
        if alerts.anything:
            self.say(f"alerts: {alerts.summary()}")
        # -- end alerts ---------------------------------------------------------------
        registry.forget_stale()
        return result.more  # a truncated tick goes again at once
