"""A throwaway pobsync site for the benchmarks that back up through a real sshd: a work
directory with its own SQLite database, Django set up and migrated, and the sshd of
tests/support/sshd.py on 127.0.0.1. Not part of pobsync."""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def timed(fn, *, to_disk: bool = False) -> float:
    # Flush the previous step's dirty pages first (untimed): otherwise whichever step
    # runs next pays for the last one's writeback. to_disk: the step's own writes are
    # flushed inside the timing, so a step that writes much pays for exactly its own.
    os.sync()
    started = time.perf_counter()
    fn()
    if to_disk:
        os.sync()
    return time.perf_counter() - started


def pair_ratio(ours: list[float], baseline: list[float]) -> float:
    """The median of each round's own ratio (ours[k] / baseline[k]): the verdict, as the
    disk's speed drifts by tens of percent across a run and each round's two steps run
    back to back."""
    return statistics.median(o / b for o, b in zip(ours, baseline, strict=True))


def run_in_site(
    prefix: str, workdir: str | None, body: Callable[[Path, Any], int], **env: str
) -> int:
    """Call body(work, sshd) inside a fresh site; the work directory is removed after."""
    if workdir is not None and not Path(workdir).is_dir():
        raise SystemExit(f"--workdir {workdir}: no such directory")
    work = Path(tempfile.mkdtemp(prefix=prefix, dir=workdir))
    home = work / "home"
    home.mkdir()
    os.environ.update(
        {
            "POBSYNC_HOME": str(home),
            "DATABASE_URL": f"sqlite:///{home / 'bench.sqlite3'}",
            "DJANGO_SETTINGS_MODULE": "pobsync_models.settings",
            **env,
        }
    )
    import django

    django.setup()
    from django.core.management import call_command

    from tests.support.sshd import running_sshd

    try:
        call_command("migrate", verbosity=0)
        with running_sshd(work / "sshd") as server:
            return body(work, server)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def configure_site(backup_root: Path, server: Any, **fields: Any) -> Any:
    """The global configuration backing up through `server`, with the backup root marked
    as the default storage (what `pobsync configure-global --backup-root` does)."""
    from pobsync_models.models import GlobalConfig
    from pobsync_models.storages import default_storage, write_marker

    config = GlobalConfig(
        pk=1,
        backup_root=str(backup_root),
        ssh_user=server.user,
        ssh_port=server.port,
        ssh_key_path=str(server.client_key_path),
        known_hosts_path=str(server.known_hosts_path),
        **fields,
    )
    config.save()
    write_marker(default_storage())
    return config


def generate_tree(src: Path, files: int, megabytes: int) -> None:
    """`files` files in 100-file directories, `megabytes` in all, sizes varying around the
    mean (the tree of the restore and verify benchmarks)."""
    total = megabytes * 1024 * 1024
    mean = max(total // max(files, 1), 1)
    block = os.urandom(4 * 1024 * 1024)
    written = 0
    for i in range(files):
        d = src / f"d{i // 100:04d}"
        if i % 100 == 0:
            d.mkdir(parents=True, exist_ok=True)
        size = mean // 2 + (i * 7919) % (mean + 1)
        size = min(size, total - written) if i < files - 1 else max(total - written, 0)
        offset = (i * 4099) % (len(block) - min(size, len(block)) + 1)
        with open(d / f"f{i:06d}.dat", "wb") as fh:
            left = size
            while left > 0:
                chunk = block[offset : offset + min(left, len(block) - offset)]
                fh.write(chunk)
                left -= len(chunk)
                offset = 0
        written += size
