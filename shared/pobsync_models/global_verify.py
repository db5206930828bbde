"""The global verification schedule (GlobalConfig.verify_cron), as Schedule rows.

Every host without a verify schedule of its own gets one row with inherited=True that
carries the global cron and time zone; the scheduler then treats it like any schedule
(exactly-once slots, coalescing, disabled hosts). sync_global_verify() makes the rows
match the configuration: configure-global and `schedule --verify` call it at once, the
scheduler at the start of every pass (so hosts added since, or an edit in the admin,
are picked up within a minute). It is idempotent and safe to run in several
schedulers at once: a second insert of a host's row hits UNIQUE(host, kind, inherited)
and is skipped.
"""

from __future__ import annotations

from dataclasses import dataclass

from pobsync_models.models import GlobalConfig, Host, Schedule

VERIFY = "verify"


@dataclass
class SyncResult:
    created: int = 0
    retimed: int = 0
    removed: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.created or self.retimed or self.removed)

    def summary(self) -> str:
        return (
            f"global verify schedule: {self.created} host(s) added, {self.retimed} retimed, "
            f"{self.removed} removed"
        )


def sync_global_verify() -> SyncResult:
    """Create, retime or remove the inherited verify schedules; see the module doc."""
    result = SyncResult()
    config = GlobalConfig.objects.filter(pk=1).values_list("verify_cron", "verify_timezone")
    cron, tz = config.first() or ("", "UTC")
    inherited = Schedule.objects.filter(kind=VERIFY, inherited=True)
    if not cron:
        result.removed = inherited.delete()[0]
        return result
    own = Schedule.objects.filter(kind=VERIFY, inherited__isnull=True).values("host_id")
    result.removed = inherited.filter(host_id__in=own).delete()[0]
    # A new cron starts from now: next_run_at NULL is initialised by the next tick.
    result.retimed = inherited.exclude(cron=cron, timezone=tz).update(
        cron=cron, timezone=tz, next_run_at=None
    )
    missing = Host.objects.exclude(pk__in=Schedule.objects.filter(kind=VERIFY).values("host_id"))
    rows = [
        Schedule(host_id=pk, kind=VERIFY, inherited=True, cron=cron, timezone=tz)
        for pk in missing.values_list("pk", flat=True)
    ]
    if rows:
        Schedule.objects.bulk_create(rows, batch_size=500, ignore_conflicts=True)
        result.created = len(rows)
    return result
