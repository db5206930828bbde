"""Database dumps: a remote command's stdout streamed into the staging snapshot.

Layout: dump NAME lands in `<snapshot>/_dumps/NAME` (`NAME.gz` when the host compresses
dumps), written before the commit point. rsync never writes `/_dumps` (it is excluded),
so what is there came from the dump command through its own forced-command key.

A dump fails when its command exits non-zero (a dropped connection or a killed dump is
ssh's 255 or a signal: a truncated dump never passes), writes anything to stderr, writes
nothing at all, or produces no output for `stall_seconds`. The reason is the dump's own
first stderr line. A failed dump leaves no file behind.

Unchanged dumps cost no space: the new file is compared byte for byte with the base
snapshot's copy (see _Sink) and, when equal, replaced by a hard link to it.
Compression is gzip with a fixed header (no name, no time), so equal dumps compress to
equal bytes.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import stat
import subprocess
import threading
import time
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pobsync_models.specs import HostSpec
from pobsync_runner.hooks import (
    KILL_GRACE_SECONDS,
    CappedBuffer,
    _preexec,
    kill_group,
    signal_group,
)
from pobsync_runner.remotekeys import remote_command_argv

DUMPS_DIR = "_dumps"
CHUNK = 1 << 20
STDERR_CAP_BYTES = 16 * 1024


@dataclass
class DumpResult:
    name: str
    file: str  # path inside the snapshot, e.g. _dumps/db.gz
    bytes: int = 0  # bytes stored (compressed size when compressed)
    seconds: float = 0.0
    linked: bool = False  # identical to the base snapshot's copy: hard-linked
    error: str = ""


@dataclass
class DumpsOutcome:
    results: list[DumpResult] = field(default_factory=list)
    log: str = ""
    stopped: bool = False

    @property
    def error(self) -> str:
        """The first failed dump's reason, or ""."""
        return next((r.error for r in self.results if r.error), "")

    def records(self) -> list[dict]:
        return [asdict(r) for r in self.results]


def take_dumps(
    spec: HostSpec,
    staging: Path,
    base: Path | None,
    *,
    stall_seconds: float,
    stop: threading.Event | None = None,
) -> DumpsOutcome:
    """Run every dump of the host into `staging`/_dumps, in name order."""
    outcome = DumpsOutcome()
    if not spec.hooks.dumps:
        return outcome
    target = staging / DUMPS_DIR
    _fresh_dir(target)
    for name, command in spec.hooks.dumps:
        if stop is not None and stop.is_set():
            outcome.stopped = True
            break
        result, stderr = _one_dump(spec, name, command, target, base, stall_seconds, stop)
        outcome.results.append(result)
        status = "ok" if not result.error else result.error
        extra = " (unchanged: hard-linked)" if result.linked else ""
        outcome.log += f"--- dump {name}: {result.bytes} bytes, {result.seconds:.1f}s{extra}, "
        outcome.log += f"{status}\n{stderr}"
        if stop is not None and stop.is_set():
            outcome.stopped = True
            break
    return outcome


def _fresh_dir(target: Path) -> None:
    """An empty real directory at `target` (a seeded partial may hold an old one)."""
    if target.is_symlink() or (target.exists() and not target.is_dir()):
        target.unlink()
    elif target.is_dir():
        shutil.rmtree(target)
    target.mkdir()


def _one_dump(
    spec: HostSpec,
    name: str,
    command: tuple[str, ...],
    target: Path,
    base: Path | None,
    stall_seconds: float,
    stop: threading.Event | None,
) -> tuple[DumpResult, str]:
    filename = name + (".gz" if spec.hooks.dump_compress else "")
    result = DumpResult(name, f"{DUMPS_DIR}/{filename}")
    final, tmp = target / filename, target / f".{filename}.tmp"
    started = time.monotonic()
    try:
        argv = remote_command_argv(spec, command)
    except FileNotFoundError as exc:
        result.error = f"dump {name}: {exc}"
        return result, ""
    stderr = CappedBuffer(STDERR_CAP_BYTES)
    old = base / DUMPS_DIR / filename if base else None
    sink = _Sink(tmp, old, spec.hooks.dump_compress)
    sink.follow()
    try:
        code, why = _stream(argv, sink, stderr, stall_seconds, stop)
        same = not why and code == 0 and sink.same()
    finally:
        sink.close()
    result.seconds = round(time.monotonic() - started, 3)
    result.bytes = sink.written
    text = stderr.text()
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    if why:
        result.error = f"dump {name} {why}"
    elif code != 0:
        how = f"killed by signal {-code}" if code < 0 else f"exited with code {code}"
        result.error = f"dump {name} {how}"
    elif first:
        result.error = f"dump {name} wrote to stderr"
    elif sink.raw == 0:
        result.error = f"dump {name} is empty"
    if result.error:
        if first:
            result.error += f": {first[:300]}"
        tmp.unlink(missing_ok=True)
        result.bytes = 0
        return result, text
    result.linked = same and old is not None and _link(old, final)
    if result.linked:
        tmp.unlink()
    else:
        os.rename(tmp, final)
    return result, text


class _Sink:
    """Where a dump's bytes go, and whether they equal the base snapshot's copy.

    Uncompressed (`direct`): ssh writes straight into the file (no copy through Python,
    as fast as `ssh ... > file`) while a thread follows the growing file and compares it
    with the old copy. Compressed: the bytes pass through zlib here and are compared as
    they are written.

    The old copy lies in an earlier snapshot (hostile data): it is used only if it is a
    regular file, opened without following links.
    """

    def __init__(self, path: Path, old: Path | None, compress: bool) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        self.path = path
        self.direct = not compress
        self.gz = None if self.direct else zlib.compressobj(6, zlib.DEFLATED, 31)  # mtime 0
        self.raw = self.written = 0
        self.old: int | None = None
        if old is not None:
            with contextlib.suppress(OSError):
                fd = os.open(old, os.O_RDONLY | os.O_NOFOLLOW)
                if stat.S_ISREG(os.fstat(fd).st_mode):
                    self.old = fd
                else:
                    os.close(fd)
        self.matched = self.old is not None

    def size(self) -> int:
        return os.fstat(self.fd).st_size

    def feed(self, chunk: bytes) -> None:
        self.raw += len(chunk)
        self._write(self.gz.compress(chunk) if self.gz is not None else chunk)

    def finish(self) -> None:
        if self.gz is not None:
            self._write(self.gz.flush())
            self.gz = None

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = os.write(self.fd, view)
            view = view[n:]
        self.written += len(data)
        if self.matched and data:
            assert self.old is not None  # noqa: S101
            self.matched = _read_exactly(self.old, len(data)) == data

    def follow(self) -> None:
        """Direct mode: compare, in a thread, what ssh has written so far with the old
        copy, so an unchanged dump is known to be unchanged when the transfer ends."""
        if self.direct and self.old is not None:
            self.ended = threading.Event()
            self.compared = 0
            self.follower = threading.Thread(target=self._follow, daemon=True)
            self.follower.start()

    def _follow(self) -> None:
        assert self.old is not None  # noqa: S101
        old_size = os.fstat(self.old).st_size
        rfd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW)
        try:
            while self.matched:
                size = self.size()
                if size > old_size:
                    self.matched = False
                elif size > self.compared:
                    n = min(size - self.compared, CHUNK)
                    new = os.pread(rfd, n, self.compared)
                    if not new or os.pread(self.old, len(new), self.compared) != new:
                        self.matched = False
                    self.compared += len(new)
                elif self.ended.is_set():
                    return
                else:
                    self.ended.wait(0.05)
        finally:
            os.close(rfd)

    def same(self) -> bool:
        """Every byte equals the old copy's, and the old copy has no more."""
        if self.old is None:
            return False
        if not self.direct:
            return self.matched and os.read(self.old, 1) == b""
        self.ended.set()
        self.follower.join()
        size = self.size()
        return self.matched and self.compared == size == os.fstat(self.old).st_size

    def close(self) -> None:
        if self.direct:
            self.raw = self.written = self.size()
            if getattr(self, "follower", None) is not None:
                self.ended.set()
                self.follower.join()
        os.close(self.fd)
        if self.old is not None:
            os.close(self.old)
            self.old = None


def _read_exactly(fd: int, n: int) -> bytes:
    parts, left = [], n
    while left:
        part = os.read(fd, left)
        if not part:
            break
        parts.append(part)
        left -= len(part)
    return b"".join(parts)


def _stream(
    argv: list[str],
    sink: _Sink,
    stderr: CappedBuffer,
    stall_seconds: float,
    stop: threading.Event | None,
) -> tuple[int | None, str]:
    """Run the dump over ssh with its stdout into `sink`: (exit code, why).

    `why` is "" normally, or says why the dump was killed (stalled, cancelled).
    """
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=sink.fd if sink.direct else subprocess.PIPE,
            stderr=subprocess.PIPE,
            close_fds=True,
            preexec_fn=_preexec(os.getpid()),  # noqa: PLW1509
        )
    except OSError as exc:
        return None, f"cannot start ssh: {exc.strerror}"
    assert proc.stderr is not None  # noqa: S101
    last_output = [time.monotonic(), 0]  # when the output last grew, its size then
    failures: list[BaseException] = []

    def read_stderr() -> None:
        while chunk := os.read(proc.stderr.fileno(), 65536):
            stderr.feed(chunk)

    def copy_stdout() -> None:
        assert proc.stdout is not None  # noqa: S101
        try:
            while chunk := os.read(proc.stdout.fileno(), CHUNK):
                sink.feed(chunk)
                last_output[0] = time.monotonic()
            sink.finish()
        except OSError as exc:  # disk full: stop reading, the dump is killed below
            failures.append(exc)

    threads = [threading.Thread(target=read_stderr, daemon=True)]
    if not sink.direct:
        threads.append(threading.Thread(target=copy_stdout, daemon=True))
    for thread in threads:
        thread.start()
    # The main thread blocks in wait() (no polling delay at the end of a dump); a
    # watchdog checks twice a second for a stop request, a stall or a failed write.
    why: list[str] = []
    done = threading.Event()

    def watch() -> None:
        while not done.wait(0.5):
            if sink.direct and (size := sink.size()) != last_output[1]:
                last_output[:] = [time.monotonic(), size]
            if failures:
                why.append(f"cannot be written: {failures[0]}")
            elif stop is not None and stop.is_set():
                why.append("stopped: the run was cancelled")
            elif time.monotonic() - last_output[0] > stall_seconds:
                why.append(f"produced no output for {stall_seconds:g}s and was killed")
            if why:
                signal_group(proc.pid, signal.SIGTERM)
                if not done.wait(KILL_GRACE_SECONDS):
                    signal_group(proc.pid, signal.SIGKILL)
                return

    watchdog = threading.Thread(target=watch, daemon=True)
    watchdog.start()
    try:
        proc.wait()
    except BaseException:
        kill_group(proc, grace=0)
        raise
    finally:
        done.set()
        watchdog.join()
        for thread in threads:
            thread.join(timeout=30)
        proc.stderr.close()
        if proc.stdout is not None:
            proc.stdout.close()
    if failures and not why:
        why.append(f"cannot be written: {failures[0]}")
    return proc.returncode, why[0] if why else ""


def _link(old: Path, final: Path) -> bool:
    """Hard-link the base snapshot's identical copy; False when the file system refuses
    (too many links, another file system): the new copy is kept then."""
    try:
        os.link(old, final, follow_symlinks=False)
    except OSError:
        return False
    return True
