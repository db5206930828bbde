"""Space accounting against `du`, on snapshots made by real backups (rsync over sshd)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from django.utils import timezone

from pobsync_models.models import Host, SnapshotRecord
from pobsync_runner.backup import run_backup
from pobsync_runner.spacescan import scan_host

pytestmark = [pytest.mark.slow, pytest.mark.sshd]
State = SnapshotRecord.State


def du(*paths: Path, inodes: bool = False) -> int:
    """`du` counting each inode once across all paths (its total line)."""
    flags = ["--inodes"] if inodes else ["-B1"]
    out = subprocess.run(
        ["du", "-sc", *flags, *map(str, paths)], capture_output=True, text=True, check=True
    ).stdout
    return int(out.strip().splitlines()[-1].split()[0])


def complete(host: Host) -> list[SnapshotRecord]:
    return list(host.snapshots.filter(state=State.COMPLETE).order_by("name"))


def backup(engine) -> None:
    run = run_backup(engine.host)
    assert run.outcome == "success", run.message


def test_figures_equal_du_and_deleting_frees_what_was_shown(engine):
    src = engine.src
    (src / "a.bin").write_bytes(os.urandom(40_000))
    (src / "b.bin").write_bytes(os.urandom(90_000))
    (src / "sub").mkdir()
    (src / "sub" / "c.txt").write_text("c" * 5000)
    os.symlink("a.bin", src / "link")
    backup(engine)
    (src / "b.bin").write_bytes(os.urandom(70_000))  # changed: a new inode in snapshot 2
    (src / "d.bin").write_bytes(os.urandom(30_000))
    backup(engine)
    (src / "a.bin").unlink()  # only snapshots 1 and 2 hold it now
    (src / "e.bin").write_bytes(os.urandom(12_000))
    backup(engine)

    result = scan_host(engine.host, engine.host_dir)
    snaps = complete(engine.host)
    assert result.walked == [s.name for s in snaps]
    assert result.used_bytes == du(engine.host_dir)
    assert result.used_inodes == du(engine.host_dir, inodes=True)
    paths = [Path(s.path) for s in snaps]
    for i, s in enumerate(snaps):
        others = paths[:i] + paths[i + 1 :]
        assert s.exclusive_bytes == du(*paths) - du(*others), s.name
        assert s.exclusive_inodes == du(*paths, inodes=True) - du(*others, inodes=True)
        before = paths[:i]
        added = du(*paths[: i + 1]) - (du(*before) if before else 0)
        assert s.added_bytes == added, s.name

    # incremental: one more snapshot walks only it and its predecessor
    (src / "f.bin").write_bytes(os.urandom(8_000))
    backup(engine)
    again = scan_host(engine.host, engine.host_dir)
    snaps = complete(engine.host)
    assert again.walked == [snaps[-2].name, snaps[-1].name]
    assert again.used_bytes == du(engine.host_dir)

    # deleting snapshot 2 frees exactly its exclusive figure
    middle = snaps[1]
    used = du(engine.host_dir)
    shutil.rmtree(middle.path)
    SnapshotRecord.objects.filter(pk=middle.pk).update(state=State.PRUNED, pruned_at=timezone.now())
    assert used - du(engine.host_dir) == middle.exclusive_bytes
    after = scan_host(engine.host, engine.host_dir)
    assert after.walked == [snaps[0].name, snaps[2].name]  # its neighbours only
    assert after.used_bytes == du(engine.host_dir)
    engine.host.refresh_from_db()
    assert engine.host.disk_used_bytes == after.used_bytes


def test_the_retention_plan_and_apply_say_what_each_prune_frees(engine, capsys):
    from django.core.management import call_command

    from pobsync_models.models import GlobalConfig
    from pobsync_models.units import format_bytes

    for i in range(3):
        (engine.src / f"f{i}.bin").write_bytes(os.urandom(50_000 * (i + 1)))
        if i:
            (engine.src / f"f{i - 1}.bin").unlink()
        backup(engine)
    GlobalConfig.objects.filter(pk=1).update(
        keep_last=1, keep_daily=0, keep_weekly=0, keep_monthly=0
    )
    scan_host(engine.host, engine.host_dir)
    snaps = complete(engine.host)
    capsys.readouterr()
    call_command("retention", engine.host.name)
    plan = capsys.readouterr().out
    for s in snaps[:2]:
        line = next(row for row in plan.splitlines() if row.split()[:1] == [s.name])
        assert "prune" in line and format_bytes(s.exclusive_bytes) in line
    total = snaps[0].exclusive_bytes + snaps[1].exclusive_bytes
    assert f"1 keep, 2 prune; frees at least {format_bytes(total)}" in plan
    used = du(engine.host_dir)
    call_command("retention", engine.host.name, "--apply", "--yes")
    out = capsys.readouterr().out
    freed = used - du(engine.host_dir)
    assert f"freed {format_bytes(freed)} " in out
    assert f"pruned 2 snapshot(s), freeing at least {format_bytes(total)}" in out
    assert freed >= total
