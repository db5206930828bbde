from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError, CommandParser
from django.db import transaction
from django.utils import timezone

from pobsync_models.commandbase import GROUP_QUEUE, PobsyncCommand, get_host, validation_error
from pobsync_models.global_verify import sync_global_verify
from pobsync_models.models import Schedule
from pobsync_models.schedules import NeverFiresError, next_after
from pobsync_models.validators import validate_cron, validate_timezone


class Command(PobsyncCommand):
    help = (
        "Create or update a host's backup schedule, or with --verify its verification "
        "schedule (cron in the schedule's time zone)."
    )
    cli_name = "schedule"
    cli_group = GROUP_QUEUE

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("host", help="host name (see `pobsync hosts`)")
        parser.add_argument("--cron", help='5-field cron expression, e.g. "15 2 * * *"')
        parser.add_argument("--timezone", help="IANA time zone the cron is read in (default UTC)")
        parser.add_argument(
            "--verify",
            action="store_true",
            help="the host's verification schedule (verify jobs), not its backup schedule",
        )
        prune = parser.add_mutually_exclusive_group()
        prune.add_argument(
            "--prune", dest="prune", action="store_true", default=None, help="apply retention"
        )
        prune.add_argument("--no-prune", dest="prune", action="store_false")
        state = parser.add_mutually_exclusive_group()
        state.add_argument("--enable", dest="enabled", action="store_true", default=None)
        state.add_argument("--disable", dest="enabled", action="store_false")

    def handle(self, *args: Any, **opts: Any) -> None:
        host = get_host(opts["host"])
        kind = "verify" if opts["verify"] else "backup"
        if opts["verify"] and opts["prune"] is not None:
            raise CommandError("--prune is for backup schedules, not with --verify")
        what = "verify schedule" if opts["verify"] else "schedule"
        # The host's own; a row that follows the global verify schedule is not edited here
        # (configure-global --verify-cron), it is replaced by the host's own.
        own = Schedule.objects.filter(host=host, kind=kind, inherited__isnull=True)
        schedules = list(own.order_by("id"))
        if len(schedules) > 1:
            # Several schedules per host are possible (admin); this command edits one.
            raise CommandError(
                f"host {host.name} has {len(schedules)} {what}s; edit them in the admin "
                "(/admin/pobsync_models/schedule/) or delete all but one"
            )
        schedule = schedules[0] if schedules else None
        if schedule is None and not opts["cron"]:
            raise CommandError(f"host {host.name} has no {what} yet: give --cron")
        created = schedule is None
        schedule = schedule or Schedule(host=host, kind=kind)
        old = (schedule.cron, schedule.timezone, schedule.enabled)
        try:
            if opts["cron"] is not None:
                schedule.cron = " ".join(opts["cron"].split())
                validate_cron(schedule.cron)
            if opts["timezone"] is not None:
                validate_timezone(opts["timezone"])
                schedule.timezone = opts["timezone"]
        except ValidationError as exc:
            raise validation_error(exc) from None
        if opts["prune"] is not None:
            schedule.prune = opts["prune"]
        if opts["enabled"] is not None:
            schedule.enabled = opts["enabled"]
        try:
            next_run = next_after(schedule.cron, schedule.timezone, timezone.now())
        except NeverFiresError:
            raise CommandError(f"cron {schedule.cron!r} never fires; check day and month") from None
        if created or old != (schedule.cron, schedule.timezone, schedule.enabled):
            # A changed or re-enabled schedule starts from now: no catch-up for slots
            # that passed under the old expression or while it was disabled.
            schedule.next_run_at = next_run if schedule.enabled else None
        try:
            schedule.full_clean()
        except ValidationError as exc:
            raise validation_error(exc) from None
        with transaction.atomic():
            schedule.save()
            if kind == "verify":
                sync_global_verify()  # drops the host's row of the global schedule
        verb = "created" if created else "updated"
        when = schedule.next_run_at.isoformat() if schedule.next_run_at else "-"
        what = "verify schedule" if kind == "verify" else "schedule"
        prune = "" if kind == "verify" else f"prune {'yes' if schedule.prune else 'no'}, "
        self.stdout.write(
            f"{what} {verb} for {host.name}: {schedule.cron} ({schedule.timezone}), "
            f"{prune}{'enabled' if schedule.enabled else 'disabled'}, next run {when}"
        )
