"""The `pobsync` executable: a thin wrapper over pobsync's Django management commands.

pobsync --help                 every subcommand, one line each, grouped
pobsync <command> [args]       runs the management command behind it
pobsync django <args>          passes straight through to Django (`pobsync django check`)
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

POBSYNC_APPS = ("pobsync_models", "pobsync_web", "pobsync_scheduler", "pobsync_runner")
# Subcommands whose module is not named after them (the brief fixes
# `manage.py run_pobsync_backup`). Only a shortcut: find() verifies cli_name and
# falls back to discover(), so a stale entry costs time, never correctness.
IRREGULAR_MODULES = {
    "backup": "run_pobsync_backup",
    "check": "pobsync_check",
    "import-configs": "import_pobsync_configs",
    "export-configs": "export_pobsync_configs",
}


def _setup() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pobsync_models.settings")
    import django

    django.setup()


def discover() -> dict[str, type]:
    """cli_name -> command class, for every pobsync command that declares one."""
    from django.core.management import get_commands, load_command_class

    found: dict[str, type] = {}
    for command_name, app_name in get_commands().items():
        if app_name not in POBSYNC_APPS:
            continue
        command = load_command_class(app_name, command_name)
        cli_name = getattr(command, "cli_name", None)
        if cli_name:
            found[cli_name] = type(command)
    return found


def find(name: str) -> type | None:
    """The command class for one subcommand, importing only that module when its file is
    named after it (configure-host -> configure_host.py) or listed in IRREGULAR_MODULES;
    the full scan is the fallback. Each `pobsync` call pays
    for Django's start-up already; importing every command module on top was avoidable.
    """
    from django.core.management import get_commands, load_command_class

    module_name = IRREGULAR_MODULES.get(name, name.replace("-", "_"))
    app_name = get_commands().get(module_name)
    if app_name in POBSYNC_APPS:
        command = load_command_class(app_name, module_name)
        if getattr(command, "cli_name", None) == name:
            return type(command)
    return discover().get(name)


def _summary(command_class: type) -> str:
    return (command_class.help or "").strip().splitlines()[0] if command_class.help else ""


def render_help(commands: dict[str, type]) -> str:
    from pobsync_models.commandbase import CLI_GROUPS

    lines = [
        "usage: pobsync <command> [options]",
        "",
        "pobsync pulls backups from remote machines with rsync over SSH into hard-linked",
        "snapshots. Run `pobsync <command> --help` for a command's options.",
    ]
    groups = list(CLI_GROUPS) + sorted({c.cli_group for c in commands.values()} - set(CLI_GROUPS))
    width = max([len(n) for n in commands] + [len("django")]) + 2
    for group in groups:
        names = sorted(n for n, c in commands.items() if c.cli_group == group)
        if group == CLI_GROUPS[3]:
            names.append("django")
        if not names:
            continue
        lines += ["", f"{group}:"]
        for name in names:
            text = (
                "run any Django management command (e.g. `pobsync django migrate`)"
                if name == "django"
                else _summary(commands[name])
            )
            lines.append(f"  {name.ljust(width)}{text}")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        return _run(args)
    except KeyboardInterrupt:
        sys.stderr.write("pobsync: interrupted\n")
        return 130
    except Exception as exc:
        if os.environ.get("POBSYNC_TRACEBACK"):
            raise
        sys.stderr.write(
            f"pobsync: internal error: {type(exc).__name__}: {exc} "
            "(set POBSYNC_TRACEBACK=1 for the traceback and report it)\n"
        )
        return 70


def _run(args: list[str]) -> int:
    if args[:1] == ["--version"]:
        from pobsync_models import __version__

        sys.stdout.write(f"pobsync {__version__}\n")
        return 0
    from django.core.exceptions import ImproperlyConfigured
    from django.db import DatabaseError

    try:
        _setup()
    except ImproperlyConfigured as exc:
        sys.stderr.write(f"pobsync: configuration error: {exc}\n")
        return 2

    if args and args[0] == "django":
        from django.core.management import execute_from_command_line

        execute_from_command_line(["pobsync django", *args[1:]])
        return 0

    if not args or args[0] in {"-h", "--help", "help"}:
        sys.stdout.write(render_help(discover()))
        return 0
    name, rest = args[0], args[1:]
    command_class = find(name)
    if command_class is None:
        sys.stderr.write(f"pobsync: unknown command {name!r} (see `pobsync --help`)\n")
        return 2
    try:
        command_class().run_from_argv(["pobsync", name, *rest])
    except DatabaseError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        sys.stderr.write(
            f"pobsync: database error: {first} (is the database migrated? "
            "run `pobsync django migrate`)\n"
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
