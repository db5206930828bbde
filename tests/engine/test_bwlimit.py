"""A host's --bwlimit really limits a real rsync transfer over ssh."""

from __future__ import annotations

import os
import time

import pytest

from pobsync_models.models import BackupRun
from pobsync_runner.backup import run_backup

pytestmark = [pytest.mark.slow, pytest.mark.sshd]

SIZE = 640 * 1024  # incompressible, so the limit applies to every byte


def test_a_host_bandwidth_limit_slows_a_real_transfer_to_that_rate(engine):
    (engine.src / "big.bin").write_bytes(os.urandom(SIZE))
    engine.host.bwlimit = "128K"  # 128 KiB/s: at least ~5 s for 640 KiB
    engine.host.full_clean()
    engine.host.save()

    started = time.monotonic()
    run = run_backup(engine.host)
    limited = time.monotonic() - started

    assert run.outcome == BackupRun.Outcome.SUCCESS, run.message
    assert run.bytes_transferred >= SIZE
    # rsync lets the first burst through, so allow a margin below SIZE / rate.
    assert limited >= 0.7 * SIZE / (128 * 1024), limited


def test_the_global_default_applies_to_hosts_without_their_own(engine):
    (engine.src / "big.bin").write_bytes(os.urandom(SIZE))
    engine.config.bwlimit = "256K"
    engine.config.save()

    started = time.monotonic()
    run = run_backup(engine.host)
    limited = time.monotonic() - started

    assert run.outcome == BackupRun.Outcome.SUCCESS, run.message
    assert limited >= 0.7 * SIZE / (256 * 1024), limited
