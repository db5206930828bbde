"""Errors of the snapshot engine that reach an operator as one line."""

from __future__ import annotations


class BackupError(Exception):
    """A problem found before any run starts (no global config, no sources, ...).

    The message is one line that says what to do; no BackupRun was created.
    """


class HostBusy(BackupError):  # noqa: N818  (name fixed by contract 1)
    """Another backup (or a retention apply) holds the host's lock."""


class StorageUnavailableError(BackupError):
    """The host's storage is not the mounted disk it should be (marker missing/foreign)."""


class StorageShortError(BackupError):
    """The storage is below its free-space minimums: the backup did not start.

    A queued job waits: the runner gives it back, retried after `retry_after` seconds."""

    retry_after = 600
