"""scripts/up.sh installs pobsync only when pyproject.toml changed (issue 10, item 10).

The script runs for real in a copy of the checkout whose .venv holds stand-ins for
python, pobsync and honcho that record how they were called: what is measured is the
script's own decision, without a real pip install or real processes.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STAND_IN = """#!/bin/sh
echo "$(basename "$0") $*" >>"{log}"
case "$*" in *"pip install"*) touch "{bin}/pobsync"; chmod +x "{bin}/pobsync" ;; esac
exit 0
"""


def checkout(tmp_path: Path) -> tuple[Path, Path]:
    tree = tmp_path / "checkout"
    (tree / "scripts").mkdir(parents=True)
    shutil.copy2(ROOT / "scripts" / "up.sh", tree / "scripts" / "up.sh")
    shutil.copy2(ROOT / "pyproject.toml", tree / "pyproject.toml")
    shutil.copy2(ROOT / "Procfile", tree / "Procfile")
    bin_dir = tree / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    log = tmp_path / "calls.log"
    for name in ("python", "python3", "honcho"):
        (bin_dir / name).write_text(STAND_IN.format(log=log, bin=bin_dir))
        (bin_dir / name).chmod(0o755)
    return tree, log


def start(tree: Path, log: Path) -> list[str]:
    log.write_text("")
    done = subprocess.run(
        ["bash", str(tree / "scripts" / "up.sh")], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return log.read_text().splitlines()


def pip_installs(calls: list[str]) -> int:
    return sum("-m pip install" in call for call in calls)


def test_it_installs_only_when_pyproject_changed(tmp_path):
    tree, log = checkout(tmp_path)
    first = start(tree, log)
    assert pip_installs(first) == 1
    assert any(c.startswith("honcho ") for c in first)  # and then starts the processes

    again = start(tree, log)
    assert pip_installs(again) == 0, again
    assert any("manage.py migrate" in c for c in again)  # migrations still applied
    assert any(c.startswith("honcho ") for c in again)

    with (tree / "pyproject.toml").open("a") as fh:
        fh.write("\n# a new dependency, say\n")
    assert pip_installs(start(tree, log)) == 1
    assert pip_installs(start(tree, log)) == 0


def test_it_installs_again_when_the_venv_lost_pobsync(tmp_path):
    tree, log = checkout(tmp_path)
    start(tree, log)
    (tree / ".venv" / "bin" / "pobsync").unlink()
    assert pip_installs(start(tree, log)) == 1


def test_a_failed_install_is_retried_on_the_next_start(tmp_path):
    tree, log = checkout(tmp_path)
    python = tree / ".venv" / "bin" / "python"
    working = python.read_text()
    python.write_text("#!/bin/sh\nexit 1\n")
    failed = subprocess.run(
        ["bash", str(tree / "scripts" / "up.sh")], capture_output=True, text=True, timeout=60
    )
    assert failed.returncode != 0
    python.write_text(working)
    assert pip_installs(start(tree, log)) == 1
