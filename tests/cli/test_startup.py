"""`pobsync --help` without Django, subcommands on pobsync's own apps only.

Timing is measured by bench/startup.py, never asserted here; these tests pin what makes
it fast (what is imported) and that the fast paths say exactly what the slow ones did.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from pobsync_models.cli import LEAN_APPS, discover, render_help, scan_commands


@pytest.mark.django_db
def test_the_source_scan_finds_exactly_what_djangos_discovery_finds():
    commands, groups = scan_commands()
    loaded = discover()
    assert sorted(commands) == sorted(loaded)
    for name, cls in loaded.items():
        assert commands[name].cli_group == cls.cli_group, name
        assert commands[name].help == cls.help, name
    assert render_help(commands, groups) == render_help(loaded)


def _imported_after(args: list[str], env_extra: str = "") -> set[str]:
    code = (
        "import sys, io, contextlib\n"
        "from pobsync_models.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    code = main({args!r})\n"
        "assert code == 0, code\n"
        "print(' '.join(sorted(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    return set(out.stdout.split())


def test_the_top_level_help_imports_no_django():
    modules = _imported_after(["--help"])
    assert not any(m == "django" or m.startswith("django.") for m in modules)


def test_a_subcommands_help_loads_only_pobsyncs_own_apps():
    code = (
        "import io, contextlib, sys\n"
        "from pobsync_models.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try:\n"
        "        main(['hosts', '--help'])\n"
        "    except SystemExit:\n"
        "        pass\n"
        "from django.apps import apps\n"
        "print(' '.join(a.name for a in apps.get_app_configs()))\n"
        "print(' '.join(sorted(sys.modules)))\n"
    )
    # A terminal width no other run uses: the help text is not in the cache yet.
    env = {**os.environ, "COLUMNS": str(200 + os.getpid() % 500)}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60,
        env=env,
    ).stdout.splitlines()  # fmt: skip
    assert out[0].split() == list(LEAN_APPS)
    modules = set(out[1].split())
    assert "django.contrib.admin" not in modules and "pobsync_web" not in modules


def _help(name: str, env: dict[str, str]) -> tuple[str, bool]:
    """(`pobsync <name> --help`'s text, whether Django was imported to print it)."""
    code = (
        "import sys, io, contextlib\n"
        "from pobsync_models.cli import main\n"
        "out = io.StringIO()\n"
        "with contextlib.redirect_stdout(out):\n"
        "    try:\n"
        f"        main([{name!r}, '--help'])\n"
        "    except SystemExit:\n"
        "        pass\n"
        "sys.stdout.write(out.getvalue())\n"
        "sys.stdout.write('\\x00' + str('django.db' in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    ).stdout
    text, _, imported = out.rpartition("\x00")
    return text, imported == "True"


def test_a_subcommands_help_is_kept_and_served_without_django_until_a_module_changes(
    tmp_path,
):
    from pathlib import Path

    import pobsync_models.cli as cli

    env = {**os.environ, "COLUMNS": "97"}  # a width of its own: a key no other test uses
    cache = Path(cli.__file__).parent / "__pycache__"
    for name in ("configure-host", "backup"):
        for kept in cache.glob(f"cli-help-{name}-*.txt"):  # left by an earlier run
            kept.unlink()
        first, first_django = _help(name, env)
        again, again_django = _help(name, env)
        assert f"usage: pobsync {name}" in first and first_django
        assert again == first and not again_django
    # Any change to a module of pobsync's apps is a miss, rendered afresh by Django.
    module = Path(cli.__file__).parent / "commandbase.py"
    st = module.stat()
    try:
        os.utime(module, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
        text, imported = _help("backup", env)
        assert imported and text == again
    finally:
        os.utime(module, ns=(st.st_atime_ns, st.st_mtime_ns))
