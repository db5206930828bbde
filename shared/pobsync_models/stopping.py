"""SIGTERM and SIGINT turned into a threading.Event, without a lock in a signal handler.

A Python signal handler runs in the main thread between two bytecodes, wherever that
thread happens to be. When it is inside `Event.wait()` it holds the Event's internal lock
for a few bytecodes, and a handler that calls `Event.set()` then waits for that same lock
forever: the process never stops (CPython issue 126434 describes the same for
multiprocessing's Event; threading's is the same lock). A runner sleeping in
`stopping.wait(1)` and signalled at the wrong moment hung this way.

So the handler here does nothing. CPython's C-level handler writes the signal's number to
a pipe (`signal.set_wakeup_fd`), and a small thread reading that pipe sets the Event and
calls `on_signal` from an ordinary thread, where waiting for a lock is harmless: the main
thread gives it back within a bytecode or two. The byte is written when the signal
arrives, so the Event is set even while the main thread is blocked inside a C call.

Used by the daemons (scheduler, runner) and by the commands that run an engine in the
foreground (`pobsync backup`, `verify`, `restore --wait`). The main thread must call it
(signal handlers can only be installed there).
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _ignore(signum: int, frame: object) -> None:
    """The Python-level handler: the pipe carries the signal (see the module's docstring)."""


@contextmanager
def stop_on_signals(
    stop: threading.Event | None = None,
    on_signal: Callable[[int], None] | None = None,
    signals: tuple[int, ...] = STOP_SIGNALS,
) -> Iterator[threading.Event]:
    """Within the block, each of `signals` sets `stop` (a new Event unless given) and then
    calls `on_signal(signum)`, both from a watcher thread. The previous handlers and
    wakeup descriptor are restored when the block ends."""
    stop = stop if stop is not None else threading.Event()
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)  # set_wakeup_fd's requirement: a handler never blocks
    watcher = threading.Thread(
        target=_watch,
        args=(read_fd, frozenset(signals), stop, on_signal),
        name="stop-on-signals",
        daemon=True,
    )
    watcher.start()
    previous_fd = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    previous = {signum: signal.signal(signum, _ignore) for signum in signals}
    try:
        yield stop
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        signal.set_wakeup_fd(previous_fd)
        os.close(write_fd)  # the watcher reads the end of the pipe and returns
        watcher.join(5)
        if not watcher.is_alive():
            os.close(read_fd)


def _watch(
    read_fd: int,
    wanted: frozenset[int],
    stop: threading.Event,
    on_signal: Callable[[int], None] | None,
) -> None:
    while True:
        try:
            data = os.read(read_fd, 64)
        except OSError:
            return
        if not data:
            return
        for signum in data:  # one byte per signal, its number
            if signum not in wanted:
                continue
            stop.set()
            if on_signal is not None:
                on_signal(signum)
