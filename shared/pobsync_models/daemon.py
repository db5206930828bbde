"""The loop every pobsync daemon (scheduler, runner) runs.

Conventions it keeps: SIGTERM and SIGINT set a shutdown flag (and call on_stop_request,
where the runner stops rsync) from a watcher thread, never inside a signal handler
(pobsync_models.stopping says why); work happens in process_one() -> bool ("did work, go
again at once"); between passes it sleeps in 1-second slices so a signal is honoured within a
second; close_old_connections() runs before every pass (idle MariaDB connections die
during long waits); the process registry row (worker id "hostname:pid:tag") is upserted each
pass and deleted on clean exit. DaemonCommand is the management command around it
(`--loop` / `--once` / `--interval`), shared by `pobsync scheduler` and `pobsync runner`.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

from django.core.management.base import CommandError, CommandParser
from django.db import DatabaseError, close_old_connections
from django.utils import timezone

from pobsync_models import registry
from pobsync_models.commandbase import GROUP_QUEUE, PobsyncCommand
from pobsync_models.stopping import stop_on_signals

log = logging.getLogger("pobsync.daemon")


class Daemon:
    kind: str = ""

    def __init__(self, *, interval: float, say: Callable[[str], Any] | None = None) -> None:
        self.interval = interval
        self.worker_id = registry.current_worker_id()
        self.started_at = timezone.now()
        self.stopping = threading.Event()
        self.said_stopping = False
        self.current_job_id: int | None = None
        self.say = say or (lambda text: log.info("%s", text))

    # -- hooks -----------------------------------------------------------------------
    def start(self) -> None:
        """Runs once before the first pass."""

    def process_one(self) -> bool:
        raise NotImplementedError

    def on_stop_request(self) -> None:
        """Called after the flag is set, from stop_on_signals' watcher thread (not the
        main thread: set events, never wait here)."""

    def idle_wait(self) -> float:
        """Seconds to sleep after a pass that did no work (default: the interval)."""
        return self.interval

    # -- machinery -------------------------------------------------------------------
    def _on_signal(self, signum: int) -> None:
        """Called from stop_on_signals' watcher thread, after `stopping` is set."""
        if not self.said_stopping:
            self.said_stopping = True
            self.say(f"{self.kind} {self.worker_id}: {signal.Signals(signum).name}, stopping")
        self.on_stop_request()

    def touch(self) -> None:
        registry.touch(
            self.worker_id,
            self.kind,
            started_at=self.started_at,
            current_job_id=self.current_job_id,
        )

    def sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self.stopping.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self.stopping.wait(min(1.0, remaining))

    def pass_once(self) -> bool:
        close_old_connections()
        self.touch()
        return self.process_one()

    def run(self, *, once: bool = False) -> None:
        with stop_on_signals(self.stopping, self._on_signal):
            self._run(once=once)

    def _run(self, *, once: bool) -> None:
        try:
            close_old_connections()
            self.touch()
            self.start()
            while not self.stopping.is_set():
                try:
                    did_work = self.pass_once()
                except DatabaseError as exc:
                    # The database went away or is locked for long: say so, keep going.
                    if once:
                        raise
                    log.warning("%s pass failed: %s", self.kind, exc)
                    did_work = False
                if once:
                    break
                if not did_work:
                    self.sleep(self.idle_wait())
        finally:
            self.shutdown()

    def shutdown(self) -> None:
        try:
            close_old_connections()
            registry.forget(self.worker_id)
        except DatabaseError as exc:
            log.warning("could not remove %s from the registry: %s", self.worker_id, exc)


class DaemonCommand(PobsyncCommand):
    """`pobsync <kind> --loop | --once [--interval S]`: builds a Daemon and runs it.

    Subclasses set default_interval, interval_help and once_help, add their own options
    in add_daemon_arguments(), and build the daemon in make_daemon(opts) (where they also
    refuse bad option combinations with CommandError).
    """

    cli_group = GROUP_QUEUE
    default_interval: float = 60.0
    interval_help = "seconds between passes"
    once_help = "one pass, then exit"

    def add_arguments(self, parser: CommandParser) -> None:
        mode = parser.add_mutually_exclusive_group(required=True)
        mode.add_argument("--loop", action="store_true", help="run until SIGTERM/SIGINT")
        mode.add_argument("--once", action="store_true", help=self.once_help)
        parser.add_argument(
            "--interval",
            type=float,
            default=self.default_interval,
            help=f"{self.interval_help} (default {self.default_interval:g})",
        )
        self.add_daemon_arguments(parser)

    def add_daemon_arguments(self, parser: CommandParser) -> None:
        """Options of this daemon only."""

    def make_daemon(self, opts: dict[str, Any]) -> Daemon:
        raise NotImplementedError

    def handle(self, *args: Any, **opts: Any) -> None:
        if opts["interval"] <= 0:
            raise CommandError("--interval must be positive")
        daemon = self.make_daemon(opts)
        self.say(f"{daemon.kind} {daemon.worker_id} started")
        daemon.run(once=opts["once"])
        self.say(f"{daemon.kind} {daemon.worker_id} stopped")

    def say(self, text: str) -> None:
        self.stdout.write(text)
        self.stdout.flush()
