"""Building the rsync command (an argv list, never a shell string) and running it.

How sources map into a snapshot: rsync runs with --relative, so each absolute source
keeps its full path under the snapshot: /etc lands at <snapshot>/etc and /home/alice
at <snapshot>/home/alice; a source "/" fills the snapshot itself. Exclude patterns
that start with "/" are therefore anchored at the remote root ("/var/cache").

Running: rsync gets its own process group and PR_SET_PDEATHSIG, so it dies with the
thread that started it, and stopping kills the whole group (rsync and its ssh). Its
output is read in fixed-size chunks by two threads and parsed line by line: memory is
flat whatever the file count; only the last STDERR_TAIL_LINES of stderr are kept.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import functools
import os
import re
import select
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pobsync_models.specs import HostSpec
from pobsync_runner.beside_base import SourcePull, enter_namespace
from pobsync_runner.dumps import DUMPS_DIR
from pobsync_runner.linux import die_with_parent, libc
from pobsync_runner.manifest import MANIFEST_FILE, MANIFEST_TMP
from pobsync_runner.rsync_output import OutputParser, Progress, Stats
from pobsync_runner.snapshots import METADATA_FILE, PARTIAL_DIR
from pobsync_runner.ssh import remote_prefix, rsync_rsh
from pobsync_runner.transfer_log import LOG_MARK, transfer_log_args

STDERR_TAIL_LINES = 40
MAX_LINE = 4096  # longer lines (a runaway path) are cut, never accumulated
STDOUT_SETTLE_SECONDS = 0.05  # see _lines: at most 20 wake-ups a second for progress
SETTLE_BELOW = 16384  # a read shorter than this waits before the next
PIPE_BYTES = 1 << 20  # rsync's stdout pipe (Linux default 64 KiB; the unprivileged max)
KILL_GRACE_SECONDS = 10.0
PROGRESS_SIGNAL = signal.SIGVTALRM
SIGNAL_PROGRESS_SINCE = (3, 2, 0)  # older rsyncs die of PROGRESS_SIGNAL


@functools.cache
def progress_on_signal() -> bool:
    """Whether this machine's rsync prints one progress line (progress2's format, after
    the file it is on) when its client process gets PROGRESS_SIGNAL: rsync 3.2.0 and
    newer. Asking that every poll instead of --info=progress2, which prints a line per
    file, saves rsync the formatting and writing and the runner the reading of 20,000
    lines per 20,000 files."""
    try:
        out = subprocess.run(
            ["rsync", "--version"], capture_output=True, text=True, timeout=30, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    m = re.search(r"version\s+v?(\d+)\.(\d+)\.(\d+)", out)
    return m is not None and tuple(int(n) for n in m.groups()) >= SIGNAL_PROGRESS_SINCE


def finished_progress(stats: Stats) -> Progress:
    """A finished transfer's progress, from its --stats: asked by signal, the last answer
    may predate the last files."""
    return Progress(stats.bytes_transferred or 0, 100.0, stats.files_all or 0)


def progress_args(by_signal: bool) -> list[str]:
    """rsync's options for progress: none when RsyncProcess asks for it by signal."""
    return ["--no-human-readable"] + ([] if by_signal else ["--info=progress2"])


def backup_progress_by_signal(link_dest: Path | None) -> bool:
    """Whether a backup's rsync is asked for progress by signal instead of printing
    --info=progress2's line per file.

    A full backup (no base) receives every file, so progress2 costs it a line per file
    that rsync formats and writes and the runner reads: asked by signal, rsync answers
    after the file it is on, and RsyncProcess adds the bytes its receiver wrote since
    (/proc/PID/io), so one large file still shows progress. An incremental keeps
    progress2: rsync answers a signal only after a file it received, and an unchanged
    incremental receives none, so only progress2's line per directory checked shows it
    moving; what it receives is a few files, a line each."""
    return link_dest is None and progress_on_signal()


# Host options beside which rsync (or an older remote sender) refuses --inplace.
_NOT_IN_PLACE_WITH = frozenset({"--sparse", "-S"})


def receive_in_place(spec: HostSpec, link_dest: Path | None, seeded: bool) -> bool:
    """Whether a backup's rsync writes each file straight at its name (--inplace)
    instead of into a temporary `.name.XXXXXX` renamed into place.

    Only for a full backup into a fresh staging directory: no base (so no file there can
    be a hard link into an older snapshot) and no seed (nothing there to overwrite).
    Skipping the temporary name and the rename per file takes 7-13% off a full copy of
    small files (docs/engine.md, "Full backups write in place"). The one file rsync was
    receiving when a run is interrupted is then at its name, cut short: the engine sets
    it aside into the partial directory (set_aside_unfinished), where the next run
    continues it as it would have with --partial-dir. rsync refuses --partial-dir beside
    --inplace, and an older remote refuses --sparse beside it."""
    if link_dest is not None or seeded or "--inplace" in spec.rsync_options:
        return False
    return not _NOT_IN_PLACE_WITH.intersection(spec.rsync_options)


def rsync_argv(
    spec: HostSpec,
    dest: Path,
    *,
    link_dest: Path | None = None,
    seeded: bool = False,
    transfer_log: Path | None = None,
    pull: SourcePull | None = None,
    progress_by_signal: bool = False,
    in_place: bool = False,
    log_on_stdout: bool = False,
) -> list[str]:
    """The full rsync command for one snapshot run (or, with `pull`, for one source of
    it pulled beside its base: pobsync_runner.beside_base; dest and link_dest are then
    as seen in that rsync's mount namespace).

    `seeded`: dest already holds a partial from an interrupted run, so rsync must also
    delete what is no longer on the source (or is now excluded) to make it exact.
    `transfer_log`: where rsync writes each transferred file's checksum (the manifest's
    source; pobsync_runner.manifest), outside the snapshot so --delete-excluded spares it.
    `progress_by_signal`: no progress line per file; RsyncProcess asks for it by signal
    (backup_progress_by_signal says when a backup does).
    `in_place`: --inplace instead of the partial directory (receive_in_place says when).
    `log_on_stdout`: the transfer log's lines on stdout, for RsyncProcess(transfer_log=)
    to copy into `transfer_log` (pobsync_runner.transfer_log).
    """
    argv = [
        "rsync",
        "--archive",
        "--numeric-ids",
        # Compare mtimes to the nanosecond. At the default (0) rsync compares whole
        # seconds, and a symlink (whose time is set without the "accurate time" flag
        # regular files get after their transfer) made in the same second as the
        # source's mtime is taken as already right: the snapshot keeps the time rsync
        # created it, not the source's. The host's own options come later and win.
        "--modify-window=-1",
        "--relative",
        f"--timeout={spec.rsync_timeout}",
        *progress_args(progress_by_signal),
        "--stats",
        "--rsh",
        rsync_rsh(spec.ssh),
    ]
    if link_dest is not None:
        argv.append(f"--link-dest={link_dest}")
    argv += partial_dir_args(spec, dest, in_place=in_place)
    if seeded:
        argv += ["--delete", "--delete-excluded"]
    if transfer_log is not None:
        argv += transfer_log_args(transfer_log, on_stdout=log_on_stdout)
    # The snapshot's own metadata files can never come from the remote.
    argv += [f"--exclude=/{name}" for name in (METADATA_FILE, MANIFEST_FILE, MANIFEST_TMP)]
    # Nor can the dumps directory: only the dump commands write there (dumps.py).
    argv.append(f"--exclude=/{DUMPS_DIR}")
    if spec.bwlimit:  # before the host's own options: an explicit --bwlimit there wins
        argv.append(f"--bwlimit={spec.bwlimit}")
    prefix = remote_prefix(spec.ssh)
    if pull is None:
        argv += [f"--exclude={pattern}" for pattern in spec.excludes]
        sources = [f"{prefix}{source}" for source in spec.sources]
    else:
        argv += pull.parent_only_exclude()
        argv += [f"--exclude={pattern}" for pattern in pull.excludes]
        sources = pull.remote_args(prefix)
    argv += list(spec.rsync_options)
    argv += sources
    argv.append(f"{dest}/")
    return argv


def partial_dir_args(spec: HostSpec, dest: Path, *, in_place: bool = False) -> list[str]:
    """Keep interrupted files' received parts in <dest>/.pobsync-partial/ (absolute, so
    one directory for the whole run, whatever the source paths), from which the next run
    seeded from this staging directory continues them. The remote can never supply that
    directory (exclude), and a seeded run's --delete-excluded never removes it (protect).
    Written in place (`in_place`, or the host's own --inplace), rsync refuses
    --partial-dir: only the exclude is left (the engine sets an interrupted file aside
    into that directory itself: lifecycle.set_aside_unfinished)."""
    keep_out = f"--exclude=/{PARTIAL_DIR}"
    if in_place:
        return ["--inplace", keep_out]
    if "--inplace" in spec.rsync_options:
        return [keep_out]
    return [f"--partial-dir={dest / PARTIAL_DIR}", f"--filter=P /{PARTIAL_DIR}", keep_out]


@dataclass
class RsyncResult:
    returncode: int  # negative: killed by that signal
    stats: Stats
    stderr_tail: list[str]
    stopped: bool  # the stop event ended it
    progress: Progress = field(default_factory=Progress)


def _child_setup(
    parent_pid: int, lib: ctypes.CDLL | None, bind: tuple[str, int] | None = None
) -> Callable[[], None]:
    def setup() -> None:
        os.setpgid(0, 0)
        if bind is not None:  # beside_base: its base directory at MOUNTPOINT
            if lib is None:
                raise OSError("no C library for a private mount namespace")
            enter_namespace(lib, *bind)
        # Ignored until rsync sets its own handler (an ignored signal stays ignored
        # across exec): a progress request arriving during start-up must not kill it.
        signal.signal(PROGRESS_SIGNAL, signal.SIG_IGN)
        die_with_parent(lib, parent_pid)

    return setup


# A progress redraw ("\r" then the right-aligned byte count) that another redraw follows:
# the later one supersedes it, so nobody needs to see it.
_SUPERSEDED_REDRAW = re.compile(rb"\r [^\r\n]*(?=\r )")


_LOG_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


class _LogCopy:
    """Copies rsync's stdout into the transfer log (rsync_argv's log_on_stdout) and
    hands the rest on: the log's own lines are taken out in one regular expression pass
    per read, so none of them is split, decoded or parsed as a line in Python.

    The copy is written a read's whole lines at a time, with every `\r` as a line end.
    A progress answer does not end its line: rsync's receiver prints it and its
    generator the log lines, so a log line can follow one on the same line; it is put
    on a line of its own (a progress answer never holds an `@`). A partial line that
    may be a log line waits for its end (up to MAX_LINE bytes); any other goes on at
    once, so the latest progress answer is seen early. A failed write ends the copying:
    the log is then short, which the manifest's count check (manifest_build) notices."""

    _OWN_LINES = re.compile(rb"^" + re.escape(LOG_MARK) + rb"[^\n]*\n", re.MULTILINE)
    _GLUED = re.compile(rb"(\r[^\r\n@]*)(?=" + re.escape(LOG_MARK) + rb")")

    def __init__(self, fd: int) -> None:
        self.fd: int | None = fd
        self.cut = b""  # the last partial line
        self.passed = 0  # how much of it the parser has had

    @classmethod
    @contextlib.contextmanager
    def open(cls, path: Path | None) -> Iterator[_LogCopy | None]:
        try:
            fd = None if path is None else os.open(path, _LOG_FLAGS, 0o600)
        except OSError:  # no log: the manifest is then built by the walk
            fd = None
        if fd is None:
            yield None
            return
        copy = cls(fd)
        try:
            yield copy
        finally:
            copy._copy(copy.cut)
            os.close(fd)

    def take(self, chunk: bytes) -> bytes:
        """Copy `chunk`; what is left for the output parser."""
        data = self.cut + chunk
        start = data.rfind(b"\n") + 1
        cut = data[start:]
        rest = b""
        if start:
            self._copy(data[:start])
            rest = self._OWN_LINES.sub(b"", self._GLUED.sub(rb"\1\n", data[self.passed : start]))
            self.passed = 0
        if len(cut) <= MAX_LINE and cut.startswith(LOG_MARK[: len(cut)]):
            self.cut = cut  # may be a log line: it waits for its end
            return rest
        rest += cut[self.passed :]
        self.cut, self.passed = cut, len(cut)
        return rest

    def _copy(self, lines: bytes) -> None:
        view = memoryview(self._GLUED.sub(rb"\1\n", lines).replace(b"\r", b"\n"))
        while view and self.fd is not None:
            try:
                view = view[os.write(self.fd, view) :]
            except OSError:
                self.fd = None


def _lines(
    fd: int,
    *,
    settle: float = 0.0,
    exited: threading.Event | None = None,
    latest_redraw_only: bool = False,
    chunks: Callable[[bytes], bytes] | None = None,
) -> Iterator[tuple[str, bool]]:
    """(line, complete) split on \n or \r, read in 64 KiB chunks. A line that followed a
    \r keeps it in front: that is how rsync starts a progress redraw, and it can never
    start a file name (rsync escapes control characters in names), so a hostile name
    cannot pose as progress.

    rsync *starts* each progress redraw with \r, so the newest progress line is only
    terminated by the next one; it is also yielded early, marked incomplete.

    settle: after a short read, wait this long before the next one, so rsync's output
    (a progress line per file) is taken in batches rather than a wake-up per line: one
    wake-up per file cost the restore of 20,000 files 0.3 s beside rsync on 2 cores. A
    full read never waits, and the pipe is enlarged (_grow_pipe) so rsync does not
    block on it meanwhile. `exited` (set once rsync is gone) ends the waiting, so the
    last output is taken at once.

    latest_redraw_only: of the progress redraws in one read, only the last is yielded
    (dropped in one regex pass): decoding and parsing 20,000 superseded lines cost a
    restore 0.03 s of CPU beside rsync and its ssh on 2 cores.

    chunks: each chunk read goes through it first, and only what it returns is split
    into lines (_LogCopy.take).
    """
    pending = b""
    while chunk := os.read(fd, 65536):
        if settle and len(chunk) < SETTLE_BELOW:
            if exited is None:
                time.sleep(settle)
            else:
                exited.wait(settle)
        if chunks is not None:
            chunk = chunks(chunk)
        if latest_redraw_only:
            chunk = _SUPERSEDED_REDRAW.sub(b"", chunk)
        parts = chunk.replace(b"\r", b"\n\r").split(b"\n")
        parts[0] = pending + parts[0]
        pending = parts.pop()[:MAX_LINE]
        for part in parts:
            if part and part != b"\r":
                yield part[:MAX_LINE].decode("utf-8", errors="replace"), True
        if pending and pending != b"\r":
            yield pending.decode("utf-8", errors="replace"), False
    if pending and pending != b"\r":
        yield pending.decode("utf-8", errors="replace"), True


def _grow_pipe(fd: int) -> None:
    """Let the pipe hold PIPE_BYTES (less when /proc/sys/fs/pipe-max-size says so)."""
    setpipe = getattr(fcntl, "F_SETPIPE_SZ", None)
    if setpipe is None:
        return
    with contextlib.suppress(OSError):
        fcntl.fcntl(fd, setpipe, PIPE_BYTES)


def _pidfd(pid: int) -> int | None:
    """A descriptor that becomes readable when the process exits (Linux 5.3+), or None."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def _exited_within(proc: subprocess.Popen, pidfd: int | None, timeout: float) -> bool:
    """Wait up to `timeout` for proc to exit; True once it has (and is reaped). With a
    pidfd the wait ends the moment it exits; Popen.wait(timeout) polls in steps of up
    to 50 ms, which every job paid once more after rsync had finished."""
    if pidfd is not None:
        ready, _, _ = select.select([pidfd], [], [], timeout)
        if not ready:
            return False
        proc.wait()
        return True
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return False
    return True


class _Receiver:
    """The client rsync's forked child, which receives the files of a pull: it answers a
    progress signal (the client's own process only generates), and its written bytes in
    /proc/PID/io show a large file's progress between answers. Held by pidfd and by its
    /proc directory, so a reused pid is never signalled or read.

    A child counts as rsync's own only when it runs rsync's program at two polls in a
    row: a child about to exec ssh runs it too, for the instant between its fork and
    its exec, and ssh would die of the signal."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.pidfd: int | None = None
        self.procfd: int | None = None
        self._candidates: set[int] = set()

    def find(self) -> bool:
        """Look for it (until found); True once held."""
        if self.pidfd is not None:
            return True
        try:
            exe = os.readlink(f"/proc/{self.pid}/exe")
            with open(f"/proc/{self.pid}/task/{self.pid}/children") as fh:
                children = [int(k) for k in fh.read().split()]
        except (OSError, ValueError):
            return False
        same = set()
        for child in children:
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{child}/exe") == exe:
                    same.add(child)
        seen_twice, self._candidates = same & self._candidates, same
        for child in sorted(seen_twice):
            pidfd = _pidfd(child)
            if pidfd is None:
                continue
            try:
                procfd = os.open(f"/proc/{child}", os.O_RDONLY | os.O_DIRECTORY)
            except OSError:
                os.close(pidfd)
                continue
            self.pidfd, self.procfd = pidfd, procfd
            return True
        return False

    def ask(self) -> None:
        if self.pidfd is not None:
            with contextlib.suppress(OSError):
                signal.pidfd_send_signal(self.pidfd, PROGRESS_SIGNAL)

    def written(self) -> int | None:
        """Bytes it has written so far (files, its log lines), or None."""
        if self.procfd is None:
            return None
        try:
            fd = os.open("io", os.O_RDONLY, dir_fd=self.procfd)
            try:
                text = os.read(fd, 4096)
            finally:
                os.close(fd)
        except OSError:
            return None
        m = re.search(rb"^wchar:\s*(\d+)", text, re.MULTILINE)
        return int(m.group(1)) if m else None

    def close(self) -> None:
        for fd in (self.pidfd, self.procfd):
            if fd is not None:
                os.close(fd)
        self.pidfd = self.procfd = None


class _SignalledProgress:
    """Progress asked by signal: the latest answer's figures, its bytes moved on by what
    the receiver wrote since the poll that first saw that answer (less than it really
    wrote in between, never more but for its few log lines), never going back."""

    def __init__(self) -> None:
        self.shown = Progress()
        self._answer = -1
        self._anchor: int | None = None

    def update(self, parser: OutputParser, written: int | None) -> Progress:
        """Called every poll, with the receiver's written bytes when it is known."""
        answer = parser.progress
        if parser.progress_seen != self._answer:  # before the first answer: all it wrote
            self._answer = parser.progress_seen
            self._anchor = written if self._answer else 0
        elif self._anchor is None:
            # The receiver was found only after this answer came (a busy machine): count
            # from now, or a large file would show no progress until the next answer.
            self._anchor = written
        extra = 0
        if written is not None and self._anchor is not None:
            extra = max(0, written - self._anchor)
        self.shown = Progress(
            max(answer.bytes + extra, self.shown.bytes),
            answer.percent,
            max(answer.files, self.shown.files),
        )
        return self.shown


class RsyncProcess:
    """One running rsync. Call run(); progress callbacks happen on the calling thread."""

    def __init__(
        self,
        argv: list[str],
        *,
        pass_fds: tuple[int, ...] = (),
        progress_by_signal: bool = False,
        bind: tuple[str, int] | None = None,
        transfer_log: Path | None = None,
    ) -> None:
        """progress_by_signal: argv has no --info=progress2 (progress_args(True)); every
        poll asks rsync for a progress line with PROGRESS_SIGNAL instead (only where
        progress_on_signal() says this rsync can). bind: (path, descriptor of it) to run
        rsync in a private mount namespace with that directory at beside_base.MOUNTPOINT
        (beside_base.enter_namespace). transfer_log: argv prints the transfer log's
        lines on stdout (rsync_argv's log_on_stdout); rsync's stdout is copied into this
        file as it comes, a chunk per write, and the log's lines go no further."""
        self.argv = argv
        self.transfer_log = transfer_log
        self.pass_fds = pass_fds + ((bind[1],) if bind is not None else ())
        self.bind = bind
        self.progress_by_signal = progress_by_signal
        self.parser = OutputParser()
        self.stderr_tail: deque[str] = deque(maxlen=STDERR_TAIL_LINES)
        self.proc: subprocess.Popen[bytes] | None = None
        self._exited = threading.Event()  # rsync is gone: the stdout reader waits no more

    def run(
        self,
        *,
        stop: threading.Event | None = None,
        on_progress: Callable[[Progress], None] | None = None,
        progress_interval: float = 3.0,
        poll_interval: float = 0.5,
    ) -> RsyncResult:
        env = {**os.environ, "LC_ALL": "C"}
        self.proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            pass_fds=self.pass_fds,
            preexec_fn=_child_setup(os.getpid(), libc(), self.bind),  # noqa: PLW1509
        )
        assert self.proc.stdout is not None and self.proc.stderr is not None  # noqa: S101
        readers = [
            threading.Thread(target=self._read_stdout, args=(self.proc.stdout,), daemon=True),
            threading.Thread(target=self._read_stderr, args=(self.proc.stderr,), daemon=True),
        ]
        for reader in readers:
            reader.start()
        stopped = False
        last_report, shown = time.monotonic(), Progress()
        pidfd = _pidfd(self.proc.pid)
        receiver = _Receiver(self.proc.pid)
        signalled = _SignalledProgress()
        try:
            while True:
                if _exited_within(self.proc, pidfd, poll_interval):
                    break
                if stop is not None and stop.is_set():
                    stopped = True
                    self.kill()
                    break
                current = None
                if self.progress_by_signal:
                    # rsync's own processes only: its ssh would die of the signal. The
                    # client answers when it sends, its receiver child when it pulls.
                    with contextlib.suppress(ProcessLookupError):
                        self.proc.send_signal(PROGRESS_SIGNAL)
                    written = None
                    if receiver.find():
                        receiver.ask()
                        written = receiver.written()
                    current = signalled.update(self.parser, written)
                now = time.monotonic()
                if on_progress and now - last_report >= progress_interval:
                    if current is None:
                        current = self.parser.progress
                    if current != shown:
                        shown = current
                        on_progress(current)
                    last_report = now
        except BaseException:
            self.kill()
            raise
        finally:
            receiver.close()
            if pidfd is not None:
                os.close(pidfd)
            self._exited.set()
            for reader in readers:
                reader.join(timeout=30)
            self.proc.stdout.close()
            self.proc.stderr.close()
        stats = self.parser.stats
        if stats.files_all is not None and stats.files_total is None:
            stats.files_total = 0  # "Number of files: 3 (dir: 3)": no regular files
        return RsyncResult(
            returncode=self.proc.returncode,
            stats=stats,
            stderr_tail=list(self.stderr_tail),
            stopped=stopped,
            progress=signalled.shown if self.progress_by_signal else self.parser.progress,
        )

    def kill(self) -> None:
        """SIGTERM the process group, SIGKILL it after a grace period; reap rsync."""
        if self.proc is None or self.proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=KILL_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        # ssh and rsync's forked helpers share the group; take them down too.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)

    def _read_stdout(self, stream) -> None:
        _grow_pipe(stream.fileno())
        with _LogCopy.open(self.transfer_log) as copy:
            lines = _lines(
                stream.fileno(),
                settle=STDOUT_SETTLE_SECONDS,
                exited=self._exited,
                latest_redraw_only=True,
                chunks=copy.take if copy is not None else None,
            )
            for line, complete in lines:
                if complete:
                    self.parser.feed(line)
                else:
                    self.parser.feed_progress(line)
        self.parser.close()

    def _read_stderr(self, stream) -> None:
        for line, complete in _lines(stream.fileno()):
            if complete:
                self.stderr_tail.append(line)
