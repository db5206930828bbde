from __future__ import annotations

import argparse
import re
from typing import Any

from django.core.management.base import CommandError, CommandParser

from pobsync_models.commandbase import GROUP_BACKUP, PobsyncCommand, get_host
from pobsync_models.models import VerifyRun
from pobsync_models.stopping import stop_on_signals
from pobsync_runner.errors import BackupError
from pobsync_runner.verify import VerifyRequest, run_verify

_RATE = re.compile(r"^(\d+(?:\.\d+)?)([KMG]?)$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def rate(raw: str) -> int:
    m = _RATE.match(raw.strip())
    value = float(m.group(1)) * _UNITS[m.group(2).lower()] if m else 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a rate: use bytes/s like 50M or 800K")
    return int(value)


def percent(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a number") from None
    if not 0 < value <= 100:
        raise argparse.ArgumentTypeError("use a percentage above 0 and at most 100")
    return value


def days(raw: str) -> int:
    if not raw.isdigit() or int(raw) < 1:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a number of days (1 or more)")
    return int(raw)


class Command(PobsyncCommand):
    help = (
        "Re-read a host's snapshots and compare every file with its manifest; each shared "
        "inode is read once. Exits 1 when anything is missing, changed or unreadable."
    )
    cli_name = "verify"
    cli_group = GROUP_BACKUP

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("host")
        parser.add_argument("--snapshot", metavar="NAME", help="verify only this snapshot")
        parser.add_argument(
            "--sample", type=percent, metavar="PERCENT", help="read only this share of the files"
        )
        parser.add_argument(
            "--since-days",
            type=days,
            metavar="N",
            help="only snapshots taken in the last N days",
        )
        parser.add_argument(
            "--max-rate", type=rate, metavar="RATE", help="read at most RATE bytes/s (50M, 800K)"
        )
        parser.add_argument(
            "--wait", action="store_true", help="wait for a running backup of the host"
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        host = get_host(opts["host"])
        request = VerifyRequest(
            snapshot=opts["snapshot"],
            sample_percent=opts["sample"],
            since_days=opts["since_days"],
            max_rate=opts["max_rate"],
        )
        try:
            with stop_on_signals() as stop:
                run, report = run_verify(host, request, wait=opts["wait"], stop=stop)
        except BackupError as exc:
            raise CommandError(str(exc)) from None
        if report is None:
            from pobsync_runner.worker import outcome_text  # the runner's wording

            raise CommandError(f"verify {host.name} {outcome_text(run.outcome, run.message)}")
        for finding in report.findings:
            self.stdout.write(finding.line())
        if report.problems > len(report.findings):
            self.stdout.write(f"... and {report.problems - len(report.findings)} more problems")
        for result in report.snapshots.values():
            if result.manifest_note:
                self.stdout.write(f"{result.name}: {result.manifest_note}")
        if run.outcome != VerifyRun.Outcome.OK:
            raise CommandError(f"verify {host.name}: {run.message}")
        self.stdout.write(f"verify {host.name}: ok, {run.message}")
