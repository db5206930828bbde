"""The `pobsync` executable: a thin wrapper over pobsync's Django management commands.

pobsync --help                 every subcommand, one line each, grouped
pobsync <command> [args]       runs the management command behind it
pobsync django <args>          passes straight through to Django (`pobsync django check`)

Start-up (docs/performance.md, "CLI start-up"): `pobsync --help` imports no Django at
all: it reads each command's cli_name, cli_group and help from the command modules'
source (scan_commands; tests/cli checks it agrees with Django's own discovery, and it
falls back to that discovery for anything it cannot read). A subcommand sets Django up
with only pobsync's own apps (LEAN_APPS: no admin, auth, sessions or web), which is all
a management command uses; `pobsync django ...` keeps every app.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace

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


# The apps a pobsync subcommand needs: its own commands and models. Admin, auth,
# sessions, static files and the web app are the web server's (and `pobsync django`'s).
LEAN_APPS = ("pobsync_models", "pobsync_scheduler", "pobsync_runner")


def _setup(*, lean: bool = False) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pobsync_models.settings")
    import django

    if lean:
        from django.conf import settings

        settings.INSTALLED_APPS = [a for a in settings.INSTALLED_APPS if a in LEAN_APPS]
    django.setup(set_prefix=False)


class _UnreadableError(Exception):
    """A command module whose CLI attributes are not plain literals."""


def _module_file(module: str) -> Path | None:
    spec = importlib.util.find_spec(module) if "." not in module else None
    if spec is None and "." in module:
        package, _, rest = module.partition(".")
        top = importlib.util.find_spec(package)
        if top is None or not top.submodule_search_locations:
            return None
        base = Path(top.submodule_search_locations[0]).joinpath(*rest.split("."))
        for candidate in (base.with_suffix(".py"), base / "__init__.py"):
            if candidate.is_file():
                return candidate
        return None
    return Path(spec.origin) if spec is not None and spec.origin else None


def _import_of(stmt: ast.stmt, name: str) -> tuple[str, str] | None:
    """(module, name in it) when `stmt` is `from MODULE import ...` binding `name`."""
    if isinstance(stmt, ast.ImportFrom) and stmt.module and stmt.level == 0:
        for alias in stmt.names:
            if (alias.asname or alias.name) == name:
                return stmt.module, alias.name
    return None


class _SourceScan:
    """Class attributes read from source with `ast`, following `from X import Name`."""

    def __init__(self) -> None:
        self.trees: dict[Path, ast.Module] = {}

    def tree(self, path: Path) -> ast.Module:
        if path not in self.trees:
            self.trees[path] = ast.parse(path.read_bytes(), str(path))
        return self.trees[path]

    def resolve(self, node: ast.expr, path: Path) -> object:
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Tuple):
            return tuple(self.resolve(e, path) for e in node.elts)
        if isinstance(node, ast.Name):
            return self.name(node.id, path)
        raise _UnreadableError(f"{path}: {ast.dump(node)[:60]}")

    def name(self, name: str, path: Path) -> object:
        tree = self.tree(path)
        for stmt in tree.body:
            if isinstance(stmt, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == name for t in stmt.targets
            ):
                return self.resolve(stmt.value, path)
            if imported := _import_of(stmt, name):
                module, original = imported
                source = _module_file(module)
                if source is None:
                    raise _UnreadableError(f"{path}: cannot find {module}")
                return self.name(original, source)
        raise _UnreadableError(f"{path}: {name} is not a module-level literal")

    def class_attrs(self, name: str, path: Path) -> dict[str, object]:
        """`name`'s literal attributes, inherited ones included; Django's BaseCommand
        (and anything outside pobsync) contributes none."""
        tree = self.tree(path)
        for stmt in tree.body:
            if isinstance(stmt, ast.ClassDef) and stmt.name == name:
                attrs: dict[str, object] = {}
                for base in stmt.bases:
                    if isinstance(base, ast.Name) and base.id != "BaseCommand":
                        origin = self._origin(base.id, path)
                        if origin is not None:
                            attrs.update(self.class_attrs(base.id, origin))
                for item in stmt.body:
                    target, value = None, None
                    if isinstance(item, ast.Assign) and len(item.targets) == 1:
                        target, value = item.targets[0], item.value
                    elif isinstance(item, ast.AnnAssign) and item.value is not None:
                        target, value = item.target, item.value
                    if isinstance(target, ast.Name) and target.id in (
                        "help",
                        "cli_name",
                        "cli_group",
                    ):
                        attrs[target.id] = self.resolve(value, path)
                return attrs
            if imported := _import_of(stmt, name):
                module, original = imported
                source = _module_file(module)
                return {} if source is None else self.class_attrs(original, source)
        raise _UnreadableError(f"{path}: no class {name}")

    def _origin(self, name: str, path: Path) -> Path | None:
        for stmt in self.tree(path).body:
            if isinstance(stmt, ast.ClassDef) and stmt.name == name:
                return path
            if imported := _import_of(stmt, name):
                if not imported[0].startswith(POBSYNC_APPS):
                    return None  # Django's own classes carry no CLI attributes
                return _module_file(imported[0])
        return None


def _help_cache_path(name: str) -> Path | None:
    """Where `pobsync <name> --help`'s text is kept, keyed by everything it depends on:
    the Python and Django versions, the terminal width, and the name, size and mtime of
    every module of pobsync's apps. Like Python's own __pycache__ (and kept there), a
    change to any of them simply misses and fills a new entry."""
    if not name.replace("-", "").isalnum():
        return None
    import hashlib
    import shutil

    key = hashlib.sha256()
    key.update(f"{sys.version}|{shutil.get_terminal_size().columns}|".encode())
    django = importlib.util.find_spec("django")
    if django is None or not django.origin:
        return None
    roots = [Path(django.origin)]
    for app in POBSYNC_APPS:
        spec = importlib.util.find_spec(app)
        if spec is not None and spec.submodule_search_locations:
            roots.append(Path(spec.submodule_search_locations[0]))
    try:
        for root in roots:
            paths = [root] if root.is_file() else sorted(root.rglob("*.py"))
            for path in paths:
                st = path.stat()
                key.update(f"{path}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    except OSError:
        return None
    return Path(__file__).parent / "__pycache__" / f"cli-help-{name}-{key.hexdigest()[:20]}.txt"


def _write_help_cache(path: Path, command_class: type, name: str) -> None:
    """Render the command's help into `path` (best effort: a read-only install just
    renders it every time)."""
    import io
    from contextlib import redirect_stdout

    buffer = io.StringIO()
    try:
        with redirect_stdout(buffer):
            command_class().create_parser("pobsync", name).print_help()
        # Python makes __pycache__ only when it writes bytecode: not under
        # PYTHONDONTWRITEBYTECODE (CI sets it), so the cache makes it itself.
        path.parent.mkdir(exist_ok=True)
        for stale in path.parent.glob(f"cli-help-{name}-*.txt"):
            stale.unlink(missing_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(buffer.getvalue(), encoding="utf-8")
        tmp.replace(path)
    except (OSError, SystemExit):
        pass


def scan_commands() -> tuple[dict[str, SimpleNamespace], tuple[str, ...]]:
    """(cli_name -> namespace with help and cli_group, CLI_GROUPS), read from source.

    Raises _UnreadableError when a command's attributes are not literals.
    """
    scan = _SourceScan()
    found: dict[str, SimpleNamespace] = {}
    base = _module_file("pobsync_models.commandbase")
    if base is None:
        raise _UnreadableError("pobsync_models.commandbase not found")
    groups = scan.name("CLI_GROUPS", base)
    for app in POBSYNC_APPS:
        spec = importlib.util.find_spec(app)
        if spec is None or not spec.submodule_search_locations:
            continue
        folder = Path(spec.submodule_search_locations[0]) / "management" / "commands"
        for path in sorted(folder.glob("*.py")):
            if path.name.startswith("_"):
                continue
            attrs = scan.class_attrs("Command", path)
            if attrs.get("cli_name"):
                found[str(attrs["cli_name"])] = SimpleNamespace(
                    help=attrs.get("help", ""), cli_group=attrs.get("cli_group", groups[0])
                )
    return found, tuple(str(g) for g in groups)


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


def render_help(commands: dict, cli_groups: tuple[str, ...] | None = None) -> str:
    if cli_groups is None:
        from pobsync_models.commandbase import CLI_GROUPS

        cli_groups = CLI_GROUPS
    CLI_GROUPS = cli_groups  # noqa: N806
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
    if not args or args[0] in {"-h", "--help", "help"}:
        try:
            commands, groups = scan_commands()
        except (_UnreadableError, OSError, SyntaxError):
            commands, groups = None, None
        if commands is not None:
            sys.stdout.write(render_help(commands, groups))
            return 0
    help_cache = _help_cache_path(args[0]) if args[1:] in (["--help"], ["-h"]) else None
    if help_cache is not None:
        try:
            sys.stdout.write(help_cache.read_text(encoding="utf-8"))
            return 0
        except OSError:
            pass
    from django.core.exceptions import ImproperlyConfigured
    from django.db import DatabaseError

    passthrough = bool(args) and args[0] == "django"
    try:
        _setup(lean=not passthrough)
    except ImproperlyConfigured as exc:
        sys.stderr.write(f"pobsync: configuration error: {exc}\n")
        return 2

    if passthrough:
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
    if help_cache is not None:
        _write_help_cache(help_cache, command_class, name)
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
