"""Run the real `pobsync` executable in a subprocess against a given database."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

POBSYNC = str(Path(sys.executable).with_name("pobsync"))


def run_pobsync(
    *args: str,
    env: dict[str, str] | None = None,
    cwd: Path | str | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [POBSYNC, *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
