"""Database dumps: a remote command's stdout streamed into the staging snapshot.

Layout: dump NAME lands in `<snapshot>/_dumps/NAME` (`NAME.gz` when the host compresses
dumps), written before the commit point. rsync never writes `/_dumps` (it is excluded),
so what is there came from the dump command through its own forced-command key.

A dump fails when its command exits non-zero (a dropped connection or a killed dump is
ssh's 255 or a signal: a truncated dump never passes), writes anything to stderr, writes
nothing at all, or produces no output for `stall_seconds`. The reason is the dump's own
first stderr line. A failed dump leaves no file behind.

Unchanged dumps cost no space: the new file is compared byte for byte with the base
snapshot's copy and, when equal, replaced by a hard link to it. Compression is gzip
with a fixed header (no name, no time), so equal dumps compress to equal bytes.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import subprocess
import threading
import time
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pobsync_models.specs import HostSpec
from pobsync_runner.hooks import CappedBuffer, _preexec, kill_group
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
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        code, why = _stream(argv, fd, spec.hooks.dump_compress, stderr, stall_seconds, stop)
    finally:
        os.close(fd)
    result.seconds = round(time.monotonic() - started, 3)
    result.bytes = tmp.stat().st_size
    text = stderr.text()
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    if why:
        result.error = f"dump {name} {why}"
    elif code != 0:
        how = f"killed by signal {-code}" if code < 0 else f"exited with code {code}"
        result.error = f"dump {name} {how}"
    elif first:
        result.error = f"dump {name} wrote to stderr"
    elif _empty(tmp, spec.hooks.dump_compress):
        result.error = f"dump {name} is empty"
    if result.error:
        if first:
            result.error += f": {first[:300]}"
        tmp.unlink(missing_ok=True)
        result.bytes = 0
        return result, text
    result.linked = _link_if_same(tmp, final, base / DUMPS_DIR / filename if base else None)
    if not result.linked:
        os.rename(tmp, final)
    return result, text


def _stream(
    argv: list[str],
    fd: int,
    compress: bool,
    stderr: CappedBuffer,
    stall_seconds: float,
    stop: threading.Event | None,
) -> tuple[int | None, str]:
    """Run the dump with stdout into `fd` (through gzip when `compress`): (code, why).

    `why` is "" normally, or says why the dump was killed (stalled, cancelled).
    Uncompressed output goes straight from ssh into the file (no copy in Python).
    """
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if compress else fd,
            stderr=subprocess.PIPE,
            close_fds=True,
            preexec_fn=_preexec(os.getpid()),  # noqa: PLW1509
        )
    except OSError as exc:
        return None, f"cannot start ssh: {exc.strerror}"
    assert proc.stderr is not None  # noqa: S101
    progress = [time.monotonic(), 0]  # last time the output grew, output bytes so far

    def read_stderr() -> None:
        while chunk := os.read(proc.stderr.fileno(), 65536):
            stderr.feed(chunk)

    def compress_stdout() -> None:
        assert proc.stdout is not None  # noqa: S101
        gz = zlib.compressobj(6, zlib.DEFLATED, 31)  # gzip header with mtime 0, no name
        with os.fdopen(os.dup(fd), "wb") as out:
            while chunk := proc.stdout.read1(CHUNK):
                out.write(gz.compress(chunk))
                progress[0], progress[1] = time.monotonic(), progress[1] + len(chunk)
            out.write(gz.flush())

    threads = [threading.Thread(target=read_stderr, daemon=True)]
    if compress:
        threads.append(threading.Thread(target=compress_stdout, daemon=True))
    for thread in threads:
        thread.start()
    why = ""
    try:
        while True:
            try:
                proc.wait(timeout=0.5)
                break
            except subprocess.TimeoutExpired:
                pass
            if not compress:
                size = os.fstat(fd).st_size
                if size != progress[1]:
                    progress[0], progress[1] = time.monotonic(), size
            if stop is not None and stop.is_set():
                why = "stopped: the run was cancelled"
            elif time.monotonic() - progress[0] > stall_seconds:
                why = f"produced no output for {stall_seconds:g}s and was killed"
            if why:
                kill_group(proc)
                break
    except BaseException:
        kill_group(proc, grace=0)
        raise
    finally:
        for thread in threads:
            thread.join(timeout=30)
        proc.stderr.close()
        if proc.stdout is not None:
            proc.stdout.close()
    return proc.returncode, why


def _empty(path: Path, compressed: bool) -> bool:
    if not compressed:
        return path.stat().st_size == 0
    with open(path, "rb") as f:
        return zlib.decompressobj(31).decompress(f.read(64 * 1024), 1) == b""


def _link_if_same(new: Path, final: Path, old: Path | None) -> bool:
    """Replace `new` by a hard link to `old` when both hold the same bytes.

    `old` lies in an earlier snapshot (hostile data): it must be a regular file, not a
    symlink, and it is opened without following links.
    """
    if old is None:
        return False
    try:
        st = os.lstat(old)
    except OSError:
        return False
    if not stat.S_ISREG(st.st_mode) or st.st_size != new.stat().st_size:
        return False
    try:
        fd = os.open(old, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return False
    with os.fdopen(fd, "rb") as a, open(new, "rb") as b:
        while True:
            x, y = a.read(CHUNK), b.read(CHUNK)
            if x != y:
                return False
            if not x:
                break
    try:
        os.link(old, final, follow_symlinks=False)
    except OSError:  # EMLINK, another file system: keep the copy
        return False
    with contextlib.suppress(OSError):
        new.unlink()
    return True
