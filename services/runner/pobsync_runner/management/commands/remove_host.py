"""`pobsync remove-host H [--delete-snapshots --yes]`.

Invariants:
* Never while the host is backed up: refused when a job holds the host row (the queue's
  mutex, checked inside the deleting transaction with the row locked, so no claim can
  slip in) or a CLI backup holds its directory lock.
* Without --delete-snapshots nothing on disk changes: the snapshots stay where they are,
  and re-adding the host plus `pobsync discover-snapshots` records them again.
* With --delete-snapshots (which needs --yes) the host's directory is first renamed away
  from its name (one rename, under the host's lock), then the row goes, then the tree is
  deleted without following any symlink inside it; if the row cannot go, the rename is
  undone.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from django.core.management.base import CommandError, CommandParser
from django.db import transaction
from django.utils import timezone

from pobsync_models.commandbase import PobsyncCommand, get_host
from pobsync_models.models import GlobalConfig, Host, SnapshotRecord
from pobsync_models.specs import host_spec
from pobsync_runner.errors import BackupError
from pobsync_runner.lock import HostLock
from pobsync_runner.prune import remove_tree


class _BusyError(Exception):
    pass


def _delete_row(host: Host) -> None:
    with transaction.atomic():
        row = Host.objects.select_for_update().filter(pk=host.pk).values("running_job_id")
        locked = row.first()
        if locked is None:
            return  # removed meanwhile
        if locked["running_job_id"] is not None:
            raise _BusyError(locked["running_job_id"])
        Host.objects.filter(pk=host.pk, running_job__isnull=True).delete()


class Command(PobsyncCommand):
    help = "Remove a host and its history; its snapshots stay on disk unless --delete-snapshots."
    cli_name = "remove-host"

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("host")
        parser.add_argument(
            "--delete-snapshots",
            action="store_true",
            help="also delete the host's directory with every snapshot in it (needs --yes)",
        )
        parser.add_argument(
            "--yes", action="store_true", help="confirm --delete-snapshots (no prompt)"
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        host = get_host(opts["host"])
        if host.running_job_id:
            raise self._busy(host.name, host.running_job_id)
        config = GlobalConfig.load()
        host_dir = host_spec(host, config).host_dir if config and config.backup_root else None
        complete = host.snapshots.filter(state=SnapshotRecord.State.COMPLETE).count()
        if opts["delete_snapshots"]:
            if host_dir is None:
                raise CommandError("no backup root is configured: there are no snapshots to delete")
            if not opts["yes"]:
                raise CommandError(
                    f"would remove host {host.name} and delete {host_dir} ({complete} complete "
                    "snapshot(s)); nothing changed: add --yes to do it"
                )
            self._remove_with_snapshots(host, host_dir, complete)
            return
        if host_dir is not None and host_dir.is_dir():
            try:
                with HostLock(host_dir, purpose="remove-host"):
                    self._delete(host)
            except BackupError as exc:
                raise CommandError(str(exc)) from None
            kept = f"; its {complete} complete snapshot(s) stay in {host_dir}"
        else:
            self._delete(host)
            kept = ""
        self.stdout.write(f"host {host.name} removed with its schedules, jobs and history{kept}")
        if kept:
            self.stdout.write(
                "(configure the host again and run `pobsync discover-snapshots --host "
                f"{host.name}` to record them again, or delete {host_dir} by hand)"
            )

    def _busy(self, name: str, job_id: int) -> CommandError:
        return CommandError(
            f"host {name} is being backed up (job {job_id}): cancel it with `pobsync cancel "
            f"{job_id}` or wait for it, then run this again"
        )

    def _delete(self, host: Host) -> None:
        try:
            _delete_row(host)
        except _BusyError as exc:
            raise self._busy(host.name, exc.args[0]) from None

    def _remove_with_snapshots(self, host: Host, host_dir: Path, complete: int) -> None:
        stamp = timezone.now().strftime("%Y%m%dT%H%M%S")
        trash = host_dir.with_name(f".{host_dir.name}.removing-{stamp}")
        try:
            with HostLock(host_dir, purpose="remove-host"):
                os.rename(host_dir, trash)
                try:
                    self._delete(host)
                except BaseException:
                    os.rename(trash, host_dir)
                    raise
        except BackupError as exc:
            raise CommandError(str(exc)) from None
        except OSError as exc:
            raise CommandError(f"cannot move {host_dir} away: {exc.strerror}") from None
        try:
            remove_tree(trash)
        except OSError as exc:
            raise CommandError(
                f"host {host.name} removed, but deleting {trash} failed: {exc}; delete it by hand"
            ) from None
        self.stdout.write(
            f"host {host.name} removed with its schedules, jobs and history; deleted {host_dir} "
            f"({complete} complete snapshot(s))"
        )
