"""Hooks around a backup: server-side pre/post commands and remote pre/post commands.

Contract (docs/hooks.md):
* Every command is an argv list, started without a shell, in its own process group,
  with stdin from /dev/null and stdout+stderr captured together. At most
  OUTPUT_CAP_BYTES of output is kept (the tail; the head is cut with a marker), so a
  chatty hook cannot grow the runner's memory or the run's log without bound.
* A hook past its timeout (or asked to stop) gets SIGTERM on its whole process group,
  then SIGKILL after KILL_GRACE_SECONDS: a hook that ignores SIGTERM or leaves children
  behind still ends.
* `pre` (then `remote_pre`) runs before rsync; a failure fails the run with the hook's
  own last output line as the reason, unless the host allows it to fail.
* `post` (then `remote_post`) runs once the run has started, whatever the outcome,
  with POBSYNC_OUTCOME and POBSYNC_EXIT_CODE; its failure turns a success into a warning.
* Remote commands go over ssh with the command's own key (pobsync_runner.remotekeys);
  the remote's authorized_keys line forces exactly that command.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pobsync_models.specs import HostSpec
from pobsync_runner.linux import die_with_parent, libc
from pobsync_runner.remotekeys import remote_command_argv

OUTPUT_CAP_BYTES = 64 * 1024
KILL_GRACE_SECONDS = 5.0
POLL_SECONDS = 0.2


@dataclass(frozen=True)
class HookResult:
    label: str  # "pre", "post", "remote pre", ...
    argv: tuple[str, ...]
    returncode: int | None  # None: it never started; negative: killed by that signal
    output: str  # captured stdout+stderr, capped
    seconds: float
    error: str = ""  # one line when it failed; "" on success
    stopped: bool = False  # a stop request ended it

    @property
    def ok(self) -> bool:
        return not self.error

    def log_block(self) -> str:
        status = "ok" if self.ok else self.error
        head = f"--- {self.label}: {' '.join(self.argv)} ({self.seconds:.1f}s, {status})"
        body = self.output.rstrip("\n")
        return f"{head}\n{body}\n" if body else f"{head}\n"


def _preexec(parent_pid: int):
    lib = libc()

    def setup() -> None:
        os.setsid()
        die_with_parent(lib, parent_pid)

    return setup


class CappedBuffer:
    """The last `cap` bytes of a stream, and how many bytes were cut before them."""

    def __init__(self, cap: int = OUTPUT_CAP_BYTES) -> None:
        self.cap = cap
        self.data = bytearray()
        self.cut = 0

    def feed(self, chunk: bytes) -> None:
        self.data += chunk
        excess = len(self.data) - self.cap
        if excess > 0:
            del self.data[:excess]
            self.cut += excess

    def text(self) -> str:
        body = self.data.decode("utf-8", errors="replace")
        return f"[... {self.cut} bytes cut ...]\n{body}" if self.cut else body


def last_line(text: str) -> str:
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line and not line.startswith("[... "):
            return line[:300]
    return ""


def signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def kill_group(proc: subprocess.Popen, grace: float = KILL_GRACE_SECONDS) -> None:
    """SIGTERM the process group, SIGKILL it after `grace` seconds; reap the leader."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        pass
    # Children that ignored SIGTERM (or outlived the leader) share the group.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def run_command(
    label: str,
    argv: tuple[str, ...] | list[str],
    *,
    timeout: float,
    env: Mapping[str, str] | None = None,
    stop: threading.Event | None = None,
    display_argv: tuple[str, ...] | None = None,
) -> HookResult:
    """Run one hook to completion (or timeout/stop); never raises for the hook's faults."""
    shown = tuple(display_argv or argv)
    started = time.monotonic()
    try:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            close_fds=True,
            preexec_fn=_preexec(os.getpid()),  # noqa: PLW1509
        )
    except OSError as exc:
        return HookResult(
            label, shown, None, "", 0.0, f"{label} hook cannot start {argv[0]}: {exc.strerror}"
        )
    buffer = CappedBuffer()
    assert proc.stdout is not None  # noqa: S101

    def read() -> None:
        while chunk := os.read(proc.stdout.fileno(), 65536):
            buffer.feed(chunk)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    deadline = started + timeout
    timed_out = stopped = False
    try:
        while True:
            try:
                proc.wait(timeout=POLL_SECONDS)
                break
            except subprocess.TimeoutExpired:
                pass
            if stop is not None and stop.is_set():
                stopped = True
            elif time.monotonic() >= deadline:
                timed_out = True
            if stopped or timed_out:
                kill_group(proc)
                break
        reader.join(timeout=2)
        if reader.is_alive():  # a background child still holds the output pipe
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            reader.join(timeout=5)
    except BaseException:
        kill_group(proc, grace=0)
        raise
    finally:
        proc.stdout.close()
    seconds = time.monotonic() - started
    output = buffer.text()
    code = proc.returncode
    detail = last_line(output)
    if timed_out:
        error = f"{label} hook timed out after {timeout:g}s and was killed"
    elif stopped:
        error = f"{label} hook stopped: the run was cancelled"
    elif code != 0:
        how = f"killed by signal {-code}" if code < 0 else f"exited with code {code}"
        error = f"{label} hook {how}"
    else:
        error = ""
    if error and detail:
        error += f": {detail}"
    return HookResult(label, shown, code, output, seconds, error, stopped)


def hook_env(
    spec: HostSpec, snapshot: str, snapshot_path: Path, *, outcome: str = "", exit_code=None
) -> dict[str, str]:
    env = {
        "POBSYNC_HOST": spec.name,
        "POBSYNC_ADDRESS": spec.ssh.address,
        "POBSYNC_SNAPSHOT": snapshot,
        "POBSYNC_SNAPSHOT_PATH": str(snapshot_path),
    }
    if outcome:
        env["POBSYNC_OUTCOME"] = outcome
        env["POBSYNC_EXIT_CODE"] = "" if exit_code is None else str(exit_code)
    return env


def run_pre(
    spec: HostSpec, snapshot: str, snapshot_path: Path, stop: threading.Event | None
) -> list[HookResult]:
    """The pre hooks in order (server, then remote); stops at the first failure."""
    hooks = spec.hooks
    results: list[HookResult] = []
    if hooks.pre:
        env = hook_env(spec, snapshot, snapshot_path)
        results.append(run_command("pre", hooks.pre, timeout=hooks.timeout, env=env, stop=stop))
        if not results[-1].ok:
            return results
    if hooks.remote_pre:
        results.append(_remote("remote pre", spec, hooks.remote_pre, stop))
    return results


def run_post(
    spec: HostSpec, snapshot: str, snapshot_path: Path, outcome: str, exit_code: int | None
) -> list[HookResult]:
    """Every post hook, each whatever the others did; never stopped early by a cancel."""
    hooks = spec.hooks
    results: list[HookResult] = []
    if hooks.post:
        env = hook_env(spec, snapshot, snapshot_path, outcome=outcome, exit_code=exit_code)
        results.append(run_command("post", hooks.post, timeout=hooks.timeout, env=env))
    if hooks.remote_post:
        results.append(_remote("remote post", spec, hooks.remote_post, None))
    return results


def _remote(
    label: str, spec: HostSpec, command: tuple[str, ...], stop: threading.Event | None
) -> HookResult:
    try:
        argv = remote_command_argv(spec, command)
    except FileNotFoundError as exc:
        return HookResult(label, command, None, "", 0.0, f"{label} hook: {exc}")
    return run_command(
        label, argv, timeout=spec.hooks.timeout, stop=stop, display_argv=("ssh", *command)
    )
