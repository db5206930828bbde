from __future__ import annotations

from typing import Any

from django.utils import timezone

from pobsync_models.commandbase import GROUP_QUEUE, PobsyncCommand, format_table
from pobsync_models.models import Schedule
from pobsync_models.schedules import NeverFiresError, next_after


def _local(when, tz: str) -> str:
    from zoneinfo import ZoneInfo

    return when.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M %Z")


class Command(PobsyncCommand):
    help = "List schedules with their next run (UTC and the schedule's own time zone)."
    cli_name = "schedules"
    cli_group = GROUP_QUEUE

    def handle(self, *args: Any, **opts: Any) -> None:
        schedules = list(Schedule.objects.select_related("host").order_by("host__name", "id"))
        if not schedules:
            self.stdout.write("no schedules (add one with `pobsync schedule HOST --cron ...`)")
            return
        now = timezone.now()
        rows = []
        for s in schedules:
            next_run = s.next_run_at
            note = ""
            if s.enabled and next_run is None:
                # Not computed yet (new or imported): the scheduler stores it on its next
                # tick; show what it will be.
                try:
                    next_run, note = next_after(s.cron, s.timezone, now), " (pending)"
                except NeverFiresError:
                    note = "never fires"
            rows.append(
                (
                    s.host.name,
                    f"{s.kind} (global)" if s.inherited else s.kind,
                    s.cron,
                    s.timezone,
                    ("yes" if s.prune else "no") if s.kind == "backup" else "",
                    ("yes" if s.host.enabled else "no (host disabled)") if s.enabled else "no",
                    next_run.strftime("%Y-%m-%d %H:%M UTC") + note if next_run else note,
                    _local(next_run, s.timezone) if next_run and s.timezone != "UTC" else "",
                )
            )
        self.stdout.write(
            format_table(
                ("host", "kind", "cron", "timezone", "prune", "enabled", "next run", "local"),
                rows,
            )
        )
