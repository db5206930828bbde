from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser
from django.utils import timezone

from pobsync_models.commandbase import (
    GROUP_BACKUP,
    PobsyncCommand,
    format_table,
    get_host,
    require_global_config,
)
from pobsync_models.specs import host_spec
from pobsync_models.storages import marker_problem
from pobsync_models.units import format_bytes
from pobsync_runner.errors import BackupError
from pobsync_runner.prune import apply_retention, plan_for_host
from pobsync_runner.spacescan import scan_locked


def _non_negative(raw: str) -> int:
    import argparse

    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a number") from None
    if value < 0:
        raise argparse.ArgumentTypeError("use 0 or more")
    return value


class Command(PobsyncCommand):
    help = "Show which snapshots the retention policy keeps or prunes, and why; --apply deletes."
    cli_name = "retention"
    cli_group = GROUP_BACKUP

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("host")
        parser.add_argument(
            "--apply", action="store_true", help="delete the pruned snapshots (needs --yes)"
        )
        parser.add_argument("--yes", action="store_true", help="confirm --apply")
        parser.add_argument(
            "--max-delete",
            type=_non_negative,
            metavar="N",
            help="delete at most N snapshots in this apply (oldest first)",
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        config = require_global_config()
        host = get_host(opts["host"])
        spec = host_spec(host, config)
        now = timezone.now()
        policy = ", ".join(
            f"{k.removeprefix('keep_')}={v}" for k, v in vars(spec.retention).items() if v
        )
        if not (opts["apply"] and opts["yes"]):
            plan = plan_for_host(host, spec, now)
            self.show(host, policy or "none (keeps everything)", plan, _exclusive(host))
            if opts["apply"]:
                self.stdout.write("dry run: add --yes to delete the snapshots marked prune")
            return
        shown = _exclusive(host)
        before = _scanned_use(host, spec)
        try:
            result = apply_retention(host, spec, now=now, max_delete=opts["max_delete"])
        except BackupError as exc:  # busy, or the lock cannot be taken
            raise CommandError(str(exc)) from None
        except OSError as exc:
            raise CommandError(f"retention of {host.name} stopped: {exc}") from None
        self.show(host, policy or "none (keeps everything)", result.plan, shown)
        for name in result.deleted:
            self.stdout.write(f"deleted {name}")
        self.stdout.write(result.summary())
        after = _scanned_use(host, spec) if result.deleted else before
        if before is not None and after is not None:
            self.stdout.write(
                f"freed {format_bytes(before - after)} "
                f"(disk use of {host.name}: {format_bytes(before)} -> {format_bytes(after)})"
            )

    def show(self, host, policy: str, plan, exclusive: dict[str, int | None]) -> None:
        self.stdout.write(f"host {host.name}: policy {policy}")
        if not plan:
            self.stdout.write("no snapshots recorded (run `pobsync discover-snapshots`?)")
            return
        integrity = {
            name: (state, files)
            for name, state, files in host.snapshots.filter(
                name__in=[d.name for d in plan]
            ).values_list("name", "integrity", "corrupt_files")
        }
        rows = []
        for d in plan:
            state, files = integrity.get(d.name, ("", 0))
            shown = f"corrupt ({files} files)" if state == "corrupt" else state
            rows.append((d.name, d.state, shown, d.action, d.reason, _frees(d, exclusive)))
        headers = ["snapshot", "state", "integrity", "action", "reason", "frees"]
        self.stdout.write(format_table(headers, rows))
        pruned = [d for d in plan if not d.keep]
        line = f"{len(plan) - len(pruned)} keep, {len(pruned)} prune"
        known = [exclusive.get(d.name) for d in pruned]
        if pruned and all(v is not None for v in known):
            # Files shared only among snapshots pruned together are freed too.
            line += f"; frees at least {format_bytes(sum(known))}"
        self.stdout.write(line)
        corrupt = [d.name for d in plan if integrity.get(d.name, ("", 0))[0] == "corrupt"]
        if corrupt:
            self.stdout.write(
                f"corrupt: {', '.join(corrupt)} (never a backup's base; "
                f"`pobsync verify {host.name}` names the files)"
            )


def _exclusive(host) -> dict[str, int | None]:
    """Per snapshot, what deleting it alone frees (from the last space scan)."""
    return dict(host.snapshots.values_list("name", "exclusive_bytes"))


def _frees(decision, exclusive: dict[str, int | None]) -> str:
    if decision.keep:
        return ""
    value = exclusive.get(decision.name)
    return "?" if value is None else format_bytes(value)


def _scanned_use(host, spec) -> int | None:
    """The host's real disk use after an (incremental) space scan; None if unscanned
    so far or the storage is not mounted."""
    if spec.storage is None or marker_problem(spec.storage) is not None:
        return None
    if not host.snapshots.filter(added_bytes__isnull=False).exists():
        return None
    result = scan_locked(host, spec.host_dir)
    return None if result is None else result.used_bytes
