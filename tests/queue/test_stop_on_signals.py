"""SIGTERM/SIGINT reach the daemons' and commands' stop event even at the moment the main
thread holds that event's lock (pobsync_models.stopping). A handler that set the event
itself waited for that lock forever: a runner signalled while inside `stopping.wait()`
never exited (CI, 2026-12-01)."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

from tests.queue.procs import ROOT

TIMEOUT = 20


def _child(body: str) -> subprocess.CompletedProcess:
    script = textwrap.dedent(
        """
        import os, signal, threading, time
        from pobsync_models.stopping import stop_on_signals
        """
    ) + textwrap.dedent(body)
    return subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


def test_a_signal_sets_the_event_while_the_main_thread_holds_its_lock():
    # The main thread takes the event's own lock, as Event.wait() does for a few
    # bytecodes each time it wakes, and SIGTERM arrives right then: a handler calling
    # stop.set() in the main thread would wait for that lock forever.
    out = _child(
        """
        stop = threading.Event()
        with stop_on_signals(stop):
            with stop._cond:
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(0.3)  # Python-level handlers have run by now
                print("still running", flush=True)
            print("stopped" if stop.wait(10) else "NOT SET", flush=True)
        """
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["still", "running", "stopped"]


def test_each_signal_sets_the_event_and_calls_back_with_its_number():
    out = _child(
        """
        seen = []
        called = threading.Event()
        def on_signal(signum):
            seen.append(signum)
            called.set()
        for sig in (signal.SIGINT, signal.SIGTERM):
            called.clear()
            with stop_on_signals(on_signal=on_signal) as stop:
                os.kill(os.getpid(), sig)
                assert called.wait(10) and stop.is_set()
        print(*seen, flush=True)
        """
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [str(int(signal.SIGINT)), str(int(signal.SIGTERM))]


def test_the_previous_handlers_and_wakeup_descriptor_come_back():
    out = _child(
        """
        def mine(signum, frame):
            print("mine", signum, flush=True)
        signal.signal(signal.SIGTERM, mine)
        r, w = os.pipe()
        os.set_blocking(w, False)
        signal.set_wakeup_fd(w)
        with stop_on_signals():
            pass
        assert signal.getsignal(signal.SIGTERM) is mine
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        assert signal.set_wakeup_fd(-1) == w
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.2)
        """
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["mine", str(int(signal.SIGTERM))]


def test_other_signals_do_not_set_the_event():
    out = _child(
        """
        got = threading.Event()
        signal.signal(signal.SIGUSR1, lambda *_: got.set())
        with stop_on_signals() as stop:
            os.kill(os.getpid(), signal.SIGUSR1)
            time.sleep(0.5)
            print("usr1" if got.is_set() else "-", "set" if stop.is_set() else "unset")
        """
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["usr1", "unset"]
