"""Two real scheduler processes on one MariaDB database: one mail per event."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.support.mariadb import fresh_database
from tests.support.receivers import smtp_server

pytestmark = [pytest.mark.slow, pytest.mark.mariadb]
ROOT = Path(__file__).resolve().parents[2]
POBSYNC = str(Path(sys.executable).with_name("pobsync"))


def _env(url: str, home: Path, smtp_port: int) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": url,
        "POBSYNC_HOME": str(home),
        "PYTHONPATH": str(ROOT),
        "POBSYNC_EMAIL_HOST": "127.0.0.1",
        "POBSYNC_EMAIL_PORT": str(smtp_port),
        "DJANGO_SETTINGS_MODULE": "pobsync_models.settings",
    }


def _seed(command: str, env: dict[str, str]) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "tests.alerts.seed", command],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_two_schedulers_send_one_mail_per_event(tmp_path):
    with fresh_database("pobsync_alerts") as url, smtp_server() as smtp:
        env = _env(url, tmp_path, smtp.port)
        _seed("trouble", env)
        procs = [
            subprocess.Popen(
                [POBSYNC, "scheduler", "--loop", "--interval", "1"],
                env=env,
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        try:
            smtp.wait_for(4, timeout=60)
            time.sleep(8)  # several more passes and sends by both
            _seed("recover", env)
            smtp.wait_for(5, timeout=60)
            time.sleep(8)
        finally:
            for proc in procs:
                proc.send_signal(signal.SIGTERM)
            errors = [proc.communicate(timeout=30)[1] for proc in procs]
        assert all(proc.returncode == 0 for proc in procs), errors
        subjects = Counter(smtp.subjects())
        assert subjects == Counter(
            {
                "h1 failing": 1,
                "h2 failing": 1,
                "h3 overdue": 1,
                "runner box:7:dead lost": 1,
                "h1 recovered": 1,
            }
        ), errors
        report = _seed("report", env)
        assert len(report["events"]) == 5
        assert [state for _, state in report["deliveries"]] == ["delivered"] * 5
