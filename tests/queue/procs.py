"""Real pobsync processes against a database they share (SQLite file or MariaDB).

Which databases: the one the test run itself uses (SQLite by default, MariaDB when
DATABASE_URL is mysql://, as in scripts/test.sh's second pass), or the space-separated
list in POBSYNC_TEST_PROCESS_DATABASES ("sqlite mariadb").
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
LEASE_TTL = 4
HEARTBEAT = 1


def engine_config(root: Path, sshd: Any) -> dict[str, Any]:
    """GlobalConfig values for runners that back up through the sshd fixture."""
    return {
        "backup_root": str(root),
        "ssh_user": sshd.user,
        "ssh_port": sshd.port,
        "ssh_key_path": str(sshd.client_key_path),
        "known_hosts_path": str(sshd.known_hosts_path),
        "connect_timeout": 5,
        "rsync_timeout": 60,
    }


def process_databases() -> list[str]:
    chosen = os.environ.get("POBSYNC_TEST_PROCESS_DATABASES")
    if chosen:
        return chosen.split()
    url = os.environ.get("DATABASE_URL", "")
    return ["mariadb"] if url.startswith(("mysql:", "mariadb:")) else ["sqlite"]


@dataclass
class ProcDB:
    vendor: str
    url: str
    home: Path
    procs: list[subprocess.Popen] = field(default_factory=list)

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            DATABASE_URL=self.url,
            PYTHONPATH=str(ROOT),
            POBSYNC_HOME=str(self.home),
            POBSYNC_LEASE_TTL=str(LEASE_TTL),
            POBSYNC_HEARTBEAT_INTERVAL=str(HEARTBEAT),
            POBSYNC_LOG_LEVEL="INFO",
            POBSYNC_TRACEBACK="1",
            DJANGO_SETTINGS_MODULE="pobsync_models.settings",
            PYTHONFAULTHANDLER="1",  # exit_code(): SIGABRT prints every thread's stack
        )
        env.update(extra)
        return env

    def tool(self, command: str, **args: Any) -> Any:
        done = subprocess.run(
            [PYTHON, "-m", "tests.queue.dbtool", command, json.dumps(args)],
            env=self.env(),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if done.returncode != 0:
            raise AssertionError(f"dbtool {command} failed:\n{done.stderr[-3000:]}")
        return json.loads(done.stdout.strip().splitlines()[-1])

    def pobsync(self, *argv: str, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [PYTHON, "-m", "pobsync_models.cli", *argv],
            env=self.env(**env),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )

    def spawn(self, log: Path, *argv: str, **env: str) -> subprocess.Popen:
        out = open(log, "ab")  # noqa: SIM115 - closed with the process by the OS
        proc = subprocess.Popen(
            [PYTHON, "-m", "pobsync_models.cli", *argv],
            env=self.env(**env),
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        proc.log_path = log  # type: ignore[attr-defined]
        self.procs.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait(10)
        self.procs.clear()


def wait_for(
    predicate: Callable[[], Any],
    timeout: float,
    step: float = 0.5,
    what: str = "",
    explain: Callable[[], str] | None = None,
):
    """predicate's first truthy value; on timeout an AssertionError that carries
    explain()'s text (the last state, the processes' logs) when it is given."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            detail = f"\n{explain()}" if explain else ""
            raise AssertionError(f"timed out after {timeout}s waiting for {what}{detail}")
        time.sleep(step)


def hourly_cron_due_now(now: datetime) -> str:
    """An hourly cron at the minute five minutes before now (UTC, the default time zone):
    after a `scheduler --once --now <ten minutes ago>` one slot is due at once and the
    next is about an hour away, so no second slot falls due while a test runs (with
    */5, a run across a five-minute mark enqueued a second job and the test waited for
    a job count it never saw again)."""
    return f"{(now - timedelta(minutes=5)).minute} * * * *"


def when(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def log_text(proc: subprocess.Popen) -> str:
    return Path(proc.log_path).read_text(errors="replace")  # type: ignore[attr-defined]


def exit_code(proc: subprocess.Popen, timeout: float) -> int:
    """proc's exit code once it exits. A process of spawn() still running after `timeout`
    is sent SIGABRT, so faulthandler writes where each of its threads was to its log, and
    the AssertionError carries that log's end: a hung daemon says where it hung."""
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGABRT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        raise AssertionError(
            f"{proc.args[-4:]} still running {timeout}s after it was told to stop:\n"
            f"{log_text(proc)[-6000:]}"
        ) from None


def descendants(pid: int) -> list[int]:
    """Pids of all processes below pid, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def rsync_processes(marker: str) -> list[int]:
    """Live rsync processes (local or the sshd-side server) whose argv mentions marker."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            line = cmdline(int(entry.name))
            if "rsync" in line and marker in line and alive(int(entry.name)):
                pids.append(int(entry.name))
    return pids
