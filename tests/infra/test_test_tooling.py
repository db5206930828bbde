"""The test run itself: a hung test fails fast, and the slowest tests are printed."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_it_has_a_global_per_test_timeout(pytestconfig):
    assert pytestconfig.getini("timeout") == "300"


def test_a_hanging_test_fails_with_the_configured_timeout(tmp_path):
    """The ini setting really reaches pytest-timeout: run the project's configuration
    (pyproject.toml, with only the timeout lowered) over a test that sleeps."""
    config = (ROOT / "pyproject.toml").read_text()
    section = config[config.index("[tool.pytest.ini_options]") :]
    section = section[: section.index("\n[", 1)] if "\n[" in section[1:] else section
    assert re.search(r"^timeout = 300$", section, re.M)
    lowered = re.sub(r"^timeout = 300$", "timeout = 2", section, flags=re.M)
    lowered = re.sub(r"^testpaths = .*$", "", lowered, flags=re.M)
    lowered = re.sub(r"^DJANGO_SETTINGS_MODULE = .*$", "", lowered, flags=re.M)
    (tmp_path / "pyproject.toml").write_text(lowered)
    (tmp_path / "test_hang.py").write_text(
        textwrap.dedent(
            """
            import time

            def test_hangs():
                time.sleep(60)
            """
        )
    )
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:django", "-p", "no:cacheprovider", "-q"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=50,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Timeout (>2.0s)" in done.stdout + done.stderr


def test_every_pytest_run_of_the_test_script_prints_the_slowest_tests():
    script = (ROOT / "scripts" / "test.sh").read_text()
    calls = [line for line in script.splitlines() if ".venv/bin/pytest " in line]
    assert len(calls) == 2
    assert all("--durations=25" in line for line in calls), calls
