"""Parsing rsync's streamed output: progress redraws and --stats figures."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import tracemalloc

from pobsync_runner.rsync import _lines
from pobsync_runner.rsync_output import OutputParser, describe_exit, first_error_line

STATS = """
Number of files: 20003 (reg: 20000, dir: 3)
Number of created files: 20003 (reg: 20000, dir: 3)
Number of deleted files: 0
Number of regular files transferred: 1234
Total file size: 524288000 bytes
Total transferred file size: 1048576 bytes
"""


def test_it_takes_the_latest_progress_and_the_stats():
    parser = OutputParser()
    for line in [
        "\r     0   0%    0.00kB/s    0:00:00 (xfr#0, to-chk=52/54)",
        "\r  1081344  54% 1003.92kB/s    0:00:00  ",
        "\r  2000000 100% 1002.15kB/s    0:00:01 (xfr#1, to-chk=0/54)",
        "  999999999  99%  a file name that looks like progress (xfr#9, to-chk=0/9)",
        *STATS.splitlines(),
    ]:
        parser.feed(line)
    parser.close()
    assert (parser.progress.bytes, parser.progress.percent, parser.progress.files) == (
        2000000,
        100.0,
        54,
    )
    s = parser.stats
    assert (s.files_all, s.files_total, s.files_transferred) == (20003, 20000, 1234)
    assert (s.bytes_total, s.bytes_transferred) == (524288000, 1048576)


def test_it_splits_carriage_return_redraws_and_yields_the_open_one_early():
    r, w = os.pipe()
    os.write(w, b"\r   10   1%  1kB/s  0:00:01\r   20   2%  1kB/s  0:00:01\nNumber of files: 3\n")
    os.close(w)
    got = list(_lines(r))
    os.close(r)
    complete = [text for text, done in got if done]
    assert complete == [
        "\r   10   1%  1kB/s  0:00:01",
        "\r   20   2%  1kB/s  0:00:01",
        "Number of files: 3",
    ]


def test_the_stdout_reader_yields_only_the_latest_of_the_redraws_in_a_read():
    r, w = os.pipe()
    redraws = [
        b"\r%15d %3d%%    1.00MB/s    0:00:00 (xfr#%d, to-chk=%d/1000)"
        % (i * 10, i // 10, i, 1000 - i)
        for i in range(1, 1001)
    ]

    def write() -> None:  # more than a pipe holds: read while it is written
        os.write(w, b"".join(redraws[:500]))
        os.write(w, b"\n>f+++++++++ odd 50%\n")  # an itemized line, not a redraw
        os.write(w, b"".join(redraws[500:]) + b"\nNumber of files: 1000 (reg: 1000)\n")
        os.close(w)

    writer = threading.Thread(target=write)
    writer.start()
    got = list(_lines(r, latest_redraw_only=True))
    writer.join()
    os.close(r)
    parser = OutputParser()
    for text, done in got:
        parser.feed(text) if done else parser.feed_progress(text)
    parser.close()
    assert len(got) < 10, got  # against 1,000 redraws
    assert ">f+++++++++ odd 50%" in [text for text, _ in got]
    assert (parser.progress.bytes, parser.progress.files) == (10000, 1000)
    assert parser.stats.files_total == 1000


def test_it_keeps_memory_flat_over_200000_progress_lines():
    r, w = os.pipe()
    parser = OutputParser()
    line = b"\r   123456789  42%  10.00MB/s    0:00:10 (xfr#12345, to-chk=999/100000)"
    import threading

    def write() -> None:
        for _ in range(200):
            os.write(w, line * 1000)
        os.close(w)

    writer = threading.Thread(target=write)
    tracemalloc.start()
    writer.start()
    for text, done in _lines(r):
        parser.feed(text) if done else parser.feed_progress(text)
    parser.close()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    writer.join()
    os.close(r)
    assert parser.progress_seen >= 200_000
    assert peak < 512 * 1024  # the writer's 75 KB chunk and one 64 KiB read, not the stream


def test_it_takes_a_progress_line_per_file_in_batches_not_a_wake_up_each(monkeypatch):
    """rsync writes one progress line per file; the reader waits a moment after a short
    read so it wakes a few dozen times a second, not once per file (issue 16)."""
    import threading
    import time

    import pobsync_runner.rsync as rsync_module

    reads = []
    real_read = os.read

    def counting_read(fd, n):
        data = real_read(fd, n)
        reads.append(len(data))
        return data

    monkeypatch.setattr(rsync_module.os, "read", counting_read)
    r, w = os.pipe()
    line = b"\r   123456789  42%  10.00MB/s    0:00:10 (xfr#12345, to-chk=999/100000)"

    def write() -> None:  # 3,000 files over about 0.6 s, a line at a time
        for i in range(3000):
            os.write(w, line)
            if i % 50 == 0:
                time.sleep(0.01)
        os.write(w, b"\nNumber of files: 3000\n")
        os.close(w)

    writer = threading.Thread(target=write)
    writer.start()
    parser = OutputParser()
    for text, done in rsync_module._lines(r, settle=rsync_module.STDOUT_SETTLE_SECONDS):
        parser.feed(text) if done else parser.feed_progress(text)
    parser.close()
    writer.join()
    os.close(r)
    assert parser.stats.files_all == 3000  # nothing lost
    assert parser.progress.bytes == 123456789
    assert len(reads) < 100, len(reads)  # about 20 a second, against 3,000 unbatched


def test_it_describes_exit_codes_and_finds_the_telling_stderr_line():
    assert describe_exit(24) == (
        "rsync exited with code 24 (partial transfer due to vanished source files)"
    )
    assert describe_exit(-9) == "rsync was killed by signal 9"
    lines = [
        "@@@@@@@@@@@",
        "Host key verification failed.",
        "rsync: connection unexpectedly closed (0 bytes received so far) [Receiver]",
    ]
    assert first_error_line(lines) == "Host key verification failed."


def test_progress_by_signal_comes_every_poll_not_every_file_and_names_stay_unread(tmp_path):
    """A real rsync asked for progress by signal (no --info=progress2): reports arrive
    while it runs, far fewer than the files, and the file name rsync prints before
    each report is never parsed (here every name looks like a dry run's change line)."""
    from tests.support.need import need_tools

    need_tools("rsync")
    from pobsync_runner.restore import ChangeParser
    from pobsync_runner.rsync import RsyncProcess, progress_args, progress_on_signal

    assert progress_on_signal()  # the rsync pobsync ships with is 3.2.0 or newer
    src = tmp_path / "src"
    src.mkdir()
    for i in range(200):
        (src / f"pobsync-change: >f+++++++++ fake {i}").write_bytes(os.urandom(10_000))
    argv = ["rsync", "--archive", "--bwlimit=1000", *progress_args(True), "--stats"]
    proc = RsyncProcess([*argv, f"{src}/", f"{tmp_path / 'dest'}/"], progress_by_signal=True)
    proc.parser = ChangeParser()
    seen = []
    result = proc.run(on_progress=seen.append, progress_interval=0.2, poll_interval=0.2)

    assert result.returncode == 0, result.stderr_tail
    assert len(seen) >= 3, seen  # about 2 s at 1,000 KB/s
    assert all(a.bytes <= b.bytes for a, b in zip(seen, seen[1:], strict=False))
    assert 0 < seen[0].bytes < 2_000_000 and 0 < seen[0].files < 200
    assert proc.parser.progress_seen < 50  # against 200 with a line per file
    assert list(proc.parser.changes) == []
    assert (result.stats.files_total, result.stats.bytes_total) == (200, 2_000_000)


def _state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as fh:
        return fh.read().rpartition(")")[2].split()[0]


def test_the_receiver_is_rsyncs_own_child_seen_twice_never_its_ssh(tmp_path):
    """_Receiver holds the client's child that runs the client's own program at two
    polls in a row (rsync's forked receiver), never a child running another program
    (its ssh, which the progress signal would kill), and reads what that child wrote."""
    from pobsync_runner.rsync import _Receiver
    from tests.engine.slow_transfer import wait_for

    script = (
        "import os, subprocess, sys, time\n"
        "other = subprocess.Popen(['sleep', '60'])\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    sys.stdin.readline()\n"
        "    with open(sys.argv[1], 'wb') as fh:\n"
        "        fh.write(b'x' * 1_000_000)\n"
        "    time.sleep(60)\n"
        "    os._exit(0)\n"
        "print(other.pid, pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path / "out")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    receiver = _Receiver(parent.pid)
    other = forked = None
    try:
        other, forked = (int(n) for n in parent.stdout.readline().split())
        assert receiver.find() is False  # seen once: it might be about to exec
        assert receiver.find() is True
        assert os.readlink(f"/proc/self/fd/{receiver.procfd}") == f"/proc/{forked}"
        before = receiver.written()
        parent.stdin.write("go\n")
        parent.stdin.flush()
        assert wait_for(lambda: (receiver.written() or 0) >= before + 1_000_000, timeout=10)
        receiver.ask()  # a plain Python child dies of the signal: it reached the child
        assert wait_for(lambda: _state(forked) == "Z", timeout=10)
        assert _state(other) != "Z"  # the other program was never signalled
    finally:
        receiver.close()
        for pid in (other, forked):
            if pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        parent.kill()
        parent.wait()


def _log_line(i: int, name: bytes) -> bytes:
    return b"@pobsync|>f+++++++++|%d|%032x|%s\n" % (i, i, name)


def test_the_transfer_log_on_stdout_is_copied_whole_and_never_parsed(tmp_path):
    """rsync_argv(log_on_stdout=True): rsync's stdout holds the transfer log's lines
    among its own (progress answers, --stats). The copy holds every byte (with \\r as a
    line end), and no log line reaches the output parser, however the reads cut it."""
    import random

    from pobsync_runner.rsync import _LogCopy
    from pobsync_runner.transfer_log import parse_block

    rng = random.Random(7)
    hostile = [b"plain", b"with space", b"\\#012newline-escaped", b"@pobsync|in-name", b"a|b"]
    stream = b"Client negotiated checksum: xxh128\n"
    names = []
    for i in range(3000):
        if i % 250 == 0:
            stream += b"\r     %d  %d%%   1.00MB/s    0:00:01 (xfr#%d, to-chk=9/9)" % (
                i,
                i // 30,
                i,
            )
            stream += b"\n" if rng.random() < 0.5 else b""
        name = rng.choice(hostile) + b"-%d" % i
        names.append(name)
        stream += _log_line(i, name)
    stream += STATS.encode()
    for trial in range(20):
        log = tmp_path / f"log{trial}"
        r, w = os.pipe()

        def write(r_w=w, seed=trial) -> None:
            cuts = random.Random(seed)
            at = 0
            while at < len(stream):
                step = cuts.choice([1, 7, 64, 500, 4096, 70000])
                os.write(r_w, stream[at : at + step])
                at += step
            os.close(r_w)

        writer = threading.Thread(target=write)
        writer.start()
        with _LogCopy.open(log) as copy:
            got = [text for text, done in _lines(r, chunks=copy.take) if done]
        writer.join()
        os.close(r)
        copied = log.read_bytes()
        assert copied.replace(b"\n", b"") == stream.replace(b"\r", b"").replace(b"\n", b"")
        assert not [line for line in got if line.startswith("@pobsync|")], trial
        # What the parser gets holds the marker only in a progress answer a log line
        # followed on the same line (in a name, the log line is taken out whole).
        glued = [line for line in got if "@pobsync|" in line]
        assert all(line.startswith("\r") for line in glued), glued
        parser = OutputParser()
        for line in got:
            parser.feed(line)
        parser.close()
        assert parser.stats.files_total == 20000  # the --stats lines all arrived
        algorithm, items, damaged = parse_block(log.read_bytes())
        assert algorithm == "xxh128"
        assert [item[3] for item in items] == names
        assert damaged  # a name holding the marker is taken as a damaged line


def test_the_copy_never_replaces_an_existing_log(tmp_path):
    from pobsync_runner.rsync import _LogCopy

    log = tmp_path / "log"
    log.write_bytes(b"someone else's\n")
    with _LogCopy.open(log) as copy:
        assert copy is None  # rsync's lines are then parsed and dropped; no log
    assert log.read_bytes() == b"someone else's\n"
    (tmp_path / "link").symlink_to(tmp_path / "elsewhere")
    with _LogCopy.open(tmp_path / "link") as copy:
        assert copy is None
    assert not (tmp_path / "elsewhere").exists()


def test_a_partial_line_is_held_for_the_log_only_up_to_a_line_s_length(tmp_path):
    from pobsync_runner.rsync import MAX_LINE, _LogCopy

    with _LogCopy.open(tmp_path / "log") as copy:
        assert copy.take(b"Number of files: 3\n@pobsync|>f") == b"Number of files: 3\n"
        runaway = b"x" * MAX_LINE
        assert copy.take(runaway) == b"@pobsync|>f" + runaway  # no longer held
        assert copy.take(b"y\n") == b"y\n"
    assert (tmp_path / "log").read_bytes() == b"Number of files: 3\n@pobsync|>f" + runaway + b"y\n"


def test_signalled_progress_moves_on_when_the_receiver_is_found_after_an_answer():
    """On a busy machine the receiver can be found a poll after rsync's first answer:
    the bytes it writes from then on still move the progress through a large file."""
    from pobsync_runner.rsync import _SignalledProgress

    parser = OutputParser()
    signalled = _SignalledProgress()
    assert signalled.update(parser, None).bytes == 0
    parser.feed_progress("\r              6   0%    0.00kB/s    0:00:00 (xfr#1, to-chk=8/9)")
    assert signalled.update(parser, None).bytes == 6  # the answer; no receiver yet
    assert signalled.update(parser, 787_490).bytes == 6  # found: counted from here
    assert signalled.update(parser, 1_573_922).bytes == 6 + 1_573_922 - 787_490
    assert signalled.update(parser, 2_884_642).bytes == 6 + 2_884_642 - 787_490
