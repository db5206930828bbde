from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError, CommandParser
from django.db import transaction

from pobsync_models.commandbase import OneLineParser, PobsyncCommand, format_table, validation_error
from pobsync_models.models import Host, Storage
from pobsync_models.storages import (
    MARKER_FILE,
    marker_problem,
    read_marker,
    spec_of,
    storage_usage,
    write_marker,
)
from pobsync_models.units import format_bytes

SETTABLE = {
    "max_running_jobs": "max_running_jobs",
    "min_free_space": "min_free_space",
    "min_free_inodes": "min_free_inodes",
}


def _bytes(n: int | None) -> str:
    return "-" if n is None else format_bytes(n)


def get_storage(name: str) -> Storage:
    storage = Storage.objects.filter(name=name).first()
    if storage is None:
        raise CommandError(f"unknown storage {name!r} (see `pobsync storage list`)")
    return storage


class Command(PobsyncCommand):
    help = "Manage storages: add, list, show, set, mark (named backup locations)."
    cli_name = "storage"

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(
            dest="action",
            required=True,
            parser_class=OneLineParser,
            metavar="{add,list,show,set,mark}",
        )
        common = {"called_from_command_line": parser.called_from_command_line}
        add = sub.add_parser("add", help="add a storage and write its marker file", **common)
        add.add_argument("name")
        add.add_argument("--path", required=True, help="absolute path of an existing directory")
        self._limits(add)
        sub.add_parser("list", help="list storages with their space", **common)
        show = sub.add_parser("show", help="one storage in detail", **common)
        show.add_argument("name")
        set_ = sub.add_parser("set", help="change a storage's cap or minimums", **common)
        set_.add_argument("name")
        self._limits(set_)
        mark = sub.add_parser(
            "mark", help="(re)write the marker file: only on the right, mounted disk", **common
        )
        mark.add_argument("name")
        mark.add_argument(
            "--take-over",
            action="store_true",
            help="rewrite a marker that names another storage: for a disk whose snapshots "
            "moved to this database (e.g. after switching from SQLite to MariaDB)",
        )

    def _limits(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--max-running-jobs", type=int, help="jobs running at once on it (0: no limit)"
        )
        parser.add_argument(
            "--min-free-space", help="free space to keep: percent (5%%) or amount (20G)"
        )
        parser.add_argument(
            "--min-free-inodes", help="free inodes to keep: percent (5%%) or count (100000)"
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        getattr(self, f"do_{opts['action']}")(opts)

    def _values(self, opts: dict[str, Any]) -> dict[str, Any]:
        values = {f: opts[o] for o, f in SETTABLE.items() if opts.get(o) is not None}
        if values.get("max_running_jobs", 0) < 0:
            raise CommandError("--max-running-jobs must be 0 or more")
        return values

    def do_add(self, opts: dict[str, Any]) -> None:
        path = Path(opts["path"])
        raw = opts["path"].rstrip("/") or "/"
        storage = Storage(name=opts["name"], path=raw, **self._values(opts))
        try:
            storage.full_clean()
        except ValidationError as exc:
            raise validation_error(exc, prefix=f"storage {opts['name']}: ") from None
        if not path.is_dir():
            raise CommandError(f"{path} is not a directory: create it or mount the disk first")
        if Storage.objects.filter(path=raw).exists():
            raise CommandError(f"{raw} is already a storage (see `pobsync storage list`)")
        marker = read_marker(path)
        if marker is not None:
            raise CommandError(
                f"{path / MARKER_FILE} already marks storage {marker.get('storage')!r}: "
                "this disk belongs to another storage"
            )
        try:
            with transaction.atomic():
                storage.save()
                write_marker(storage)  # inside: a failed write leaves no storage row
        except OSError as exc:
            raise CommandError(f"cannot write {path / MARKER_FILE}: {exc.strerror}") from None
        self.stdout.write(f"storage {storage.name} added at {raw} (marker {MARKER_FILE} written)")

    def do_list(self, opts: dict[str, Any]) -> None:
        rows = []
        for s in Storage.objects.order_by("name"):
            problem = marker_problem(spec_of(s))
            rows.append(
                (
                    s.name + (" (default)" if s.is_default else ""),
                    s.path,
                    s.hosts.count()
                    + (Host.objects.filter(storage=None).count() if s.is_default else 0),
                    s.max_running_jobs or "no limit",
                    _bytes(s.free_bytes),
                    s.free_inodes,
                    "ok" if problem is None else "NOT MOUNTED",
                )
            )
        if not rows:
            self.stdout.write("no storages (configure-global --backup-root or storage add)")
            return
        headers = ("name", "path", "hosts", "cap", "free", "free inodes", "marker")
        self.stdout.write(format_table(headers, rows))

    def do_show(self, opts: dict[str, Any]) -> None:
        s = get_storage(opts["name"])
        problem = marker_problem(spec_of(s))
        usage = storage_usage(s)
        lines = [
            ("name", s.name + (" (default: the global backup root)" if s.is_default else "")),
            ("path", s.path),
            ("marker", "ok" if problem is None else problem),
            ("max running jobs", s.max_running_jobs or "no limit"),
            ("min free space", s.min_free_space),
            ("min free inodes", s.min_free_inodes),
            ("size", _bytes(s.total_bytes)),
            ("free", _bytes(s.free_bytes)),
            (
                "inodes free",
                "-" if s.free_inodes is None else f"{s.free_inodes} of {s.total_inodes}",
            ),
            ("measured", s.measured_at.strftime("%Y-%m-%d %H:%M:%S") if s.measured_at else "-"),
            ("growth per day", _bytes(usage.growth_per_day)),
            (
                "days until full",
                "-" if usage.days_until_full is None else f"{usage.days_until_full:.0f}",
            ),
        ]
        width = max(len(k) for k, _ in lines)
        for key, value in lines:
            self.stdout.write(f"{key.ljust(width)}  {value}")

    def do_set(self, opts: dict[str, Any]) -> None:
        s = get_storage(opts["name"])
        values = self._values(opts)
        if not values:
            raise CommandError("nothing to change: give --max-running-jobs or --min-free-*")
        for field, value in values.items():
            setattr(s, field, value)
        try:
            s.full_clean()
        except ValidationError as exc:
            raise validation_error(exc, prefix=f"storage {s.name}: ") from None
        s.save(update_fields=[*values, "updated_at"])
        self.stdout.write(f"storage {s.name} updated")

    def do_mark(self, opts: dict[str, Any]) -> None:
        s = get_storage(opts["name"])
        path = Path(s.path)
        if not path.is_dir():
            raise CommandError(f"{path} is not a directory: mount the disk first")
        marker = read_marker(path)
        foreign = marker is not None and marker.get("marker_id") != s.marker_id
        if foreign and not opts["take_over"]:
            raise CommandError(
                f"{path / MARKER_FILE} marks storage {marker.get('storage')!r}: this disk "
                "belongs to another storage (--take-over if its snapshots are now this one's)"
            )
        try:
            write_marker(s)
        except OSError as exc:
            raise CommandError(f"cannot write {path / MARKER_FILE}: {exc.strerror}") from None
        self.stdout.write(f"storage {s.name}: marker written at {path / MARKER_FILE}")
