"""The migration helpers through the real `pobsync` executable and manage.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.legacy.conftest import GLOBAL_YAML, WEB1_YAML, write_tree

ROOT = Path(__file__).resolve().parents[2]
POBSYNC = Path(sys.executable).parent / "pobsync"


def _env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=f"sqlite:///{tmp_path / 'cli.sqlite3'}",
        POBSYNC_HOME=str(tmp_path / "home"),
        POBSYNC_SECRET_KEY="test-secret-key-for-the-cli-test-only",
    )
    env.pop("POBSYNC_TRACEBACK", None)
    return env


def _run(argv: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, cwd=ROOT, env=_env(tmp_path), capture_output=True, text=True, timeout=120
    )


def test_it_lists_both_helpers_under_the_migration_heading(tmp_path: Path):
    result = _run([str(POBSYNC), "--help"], tmp_path)
    assert result.returncode == 0
    section = result.stdout.split("Migration helpers (legacy YAML):\n", 1)[1]
    assert section.splitlines()[0].startswith("  export-configs ")
    assert section.splitlines()[1].startswith("  import-configs ")


def test_a_bad_prefix_exits_1_with_one_problem_and_no_traceback(tmp_path: Path):
    result = _run([str(POBSYNC), "import-configs", "--prefix", str(tmp_path / "none")], tmp_path)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"{tmp_path / 'none' / 'config'}: no such directory (expected config/global.yaml and "
        "config/hosts/<host>.yaml under the prefix)",
        "pobsync: 1 problem in 1 file; nothing was imported: fix it and run again",
    ]
    assert "Traceback" not in result.stderr


def test_a_usage_mistake_exits_2_in_one_line(tmp_path: Path):
    result = _run([str(POBSYNC), "export-configs", "--prefx", "/x"], tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().startswith("pobsync export-configs: unrecognized arguments")
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_the_brief_commands_import_and_export_a_tree(tmp_path: Path):
    prefix = write_tree(
        tmp_path / "legacy", {"global.yaml": GLOBAL_YAML, "hosts/web1.yaml": WEB1_YAML}
    )
    bad = write_tree(
        tmp_path / "bad",
        {"global.yaml": GLOBAL_YAML, "hosts/web1.yaml": WEB1_YAML + "port: many\n"},
    )
    manage = [sys.executable, "manage.py"]
    assert _run([str(POBSYNC), "django", "migrate", "-v0"], tmp_path).returncode == 0

    refused = _run([*manage, "import_pobsync_configs", "--prefix", str(bad)], tmp_path)
    assert refused.returncode == 1
    assert "port: expected a whole number or 'inherit', got the text 'many'" in refused.stderr
    assert "Traceback" not in refused.stderr

    first = _run([*manage, "import_pobsync_configs", "--prefix", str(prefix)], tmp_path)
    assert first.returncode == 0, first.stderr
    assert "host web1: created with 1 schedule" in first.stdout
    second = _run([str(POBSYNC), "import-configs", "--prefix", str(prefix)], tmp_path)
    assert "nothing changed" in second.stdout

    out = tmp_path / "exported"
    exported = _run([*manage, "export_pobsync_configs", "--prefix", str(out)], tmp_path)
    assert exported.returncode == 0, exported.stderr
    first_bytes = (out / "config" / "hosts" / "web1.yaml").read_bytes()
    again = _run([str(POBSYNC), "export-configs", "--prefix", str(out)], tmp_path)
    assert again.stdout.strip() == "2 files already up to date"
    assert (out / "config" / "hosts" / "web1.yaml").read_bytes() == first_bytes
