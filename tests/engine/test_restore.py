"""`pobsync restore` end to end, as separate processes: a real runner claims the restore
job, real rsync pushes over the real sshd with the restricted restore key (rrsync -wo
-no-del) or copies to a directory; the restored tree is compared entry by entry
(lstat fields and contents) with the original."""

from __future__ import annotations

import os
import stat
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.trees import damage, manifest

pytestmark = [pytest.mark.slow, pytest.mark.sshd]


def test_it_restores_to_the_host_over_ssh_exactly_as_backed_up(site):
    original = manifest(site.src)
    damage(site.src)
    # Without --overwrite, the damaged (existing) files are left alone...
    kept = site("restore", "web1", str(site.src), "--to-host")
    assert "restore job" in kept.stdout and ": success, copied" in kept.stdout
    assert (site.src / "secret").read_text() == "damaged\n"
    assert not (site.src / "tool").stat().st_mode & stat.S_ISUID
    # ...and with it everything is as it was, deleted files and metadata included.
    site("restore", "web1", str(site.src), "--to-host", "--overwrite")
    assert manifest(site.src) == original
    sparse = (site.src / "sparse.img").stat()
    assert sparse.st_blocks * 512 < sparse.st_size  # holes stayed holes


def test_it_restores_to_a_directory_keeping_full_paths(site, tmp_path):
    original = manifest(site.src)
    target = tmp_path / "restored"
    out = site("restore", "web1", str(site.src), "--to-dir", str(target)).stdout
    assert "-> dir " in out and ": success" in out
    restored = target / str(site.src).lstrip("/")
    assert manifest(restored) == original
    assert sorted(os.listdir(target)) == [str(site.src).lstrip("/").split("/")[0]]
    # The record's progress ends at the finished figures, whenever rsync last reported.
    [(percent, progress, copied, files, entries)] = site.sql(
        "select progress_percent, progress_bytes, bytes_transferred, progress_files,"
        " files_total from pobsync_models_restorerequest order by id desc limit 1"
    )
    assert (percent, progress) == (100.0, copied) and copied > 0
    assert files > entries > 0  # every entry (files, directories, links) and the files
    everything = tmp_path / "everything"  # "/" is the whole snapshot, metadata left out
    site("restore", "web1", "/", "--to-dir", str(everything))
    assert manifest(everything / str(site.src).lstrip("/")) == original
    assert not list(everything.glob(".pobsync*"))


def test_a_dry_run_writes_nothing_and_prints_the_changes(site, tmp_path):
    damage(site.src)
    before = manifest(site.src)
    out = site("restore", "web1", str(site.src), "--to-host", "--overwrite", "--dry-run").stdout
    assert "etc/passwd" in out and "dir with space" in out and "would copy" in out
    assert manifest(site.src) == before
    target = tmp_path / "dry"
    site("restore", "web1", f"{site.src}/etc", "--to-dir", str(target), "--dry-run")
    assert not target.exists() or not any(target.iterdir())


def test_it_leaves_a_newer_target_file_alone_without_overwrite(site):
    newer = site.src / "etc" / "passwd"
    newer.write_text("edited after the backup\n")
    os.utime(newer, (time.time() + 3600, time.time() + 3600))
    site("restore", "web1", f"{site.src}/etc", "--to-host")
    assert newer.read_text() == "edited after the backup\n"


def test_it_refuses_paths_not_in_the_snapshot_and_hostile_paths(site, tmp_path):
    snap = site.sql("select name from pobsync_models_snapshotrecord")[0][0]
    for path, why in [
        (f"{site.src}/nope", f"snapshot web1/{snap}: {site.src}/nope is not in the snapshot"),
        (f"{site.src}/etc/escape/x", "goes through a symlink"),
        (f"{site.src}/../../etc", "contains '..'"),
        ("etc", "is not absolute"),
        ("/.pobsync-snapshot.json", "pobsync's metadata"),
    ]:
        result = site("restore", "web1", path, "--to-dir", str(tmp_path / "t"), check=False)
        assert result.returncode == 1, result
        assert why in result.stderr and "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "t").exists()
    inside = site("restore", "web1", str(site.src), "--to-dir", str(site.root / "x"), check=False)
    assert inside.returncode == 1 and "overlaps the backup storage" in inside.stderr
    assert site.sql("select count(*) from pobsync_models_restorerequest") == [(0,)]


def test_it_confines_the_restore_key_to_its_root(site, tmp_path):
    """A host whose restore root is /srv/x: the original paths are refused before
    queueing; and rrsync itself refuses a write outside its directory."""
    confined = tmp_path / "confined"
    confined.mkdir()
    line = site("ssh-key", "--restore", "--root", str(confined), "--host", "web1").stdout
    assert f'command="rrsync -wo -no-del {confined}" ' in line
    auth = tmp_path / "sshd" / "authorized_keys"
    backup_line = auth.read_text().splitlines()[0]
    auth.write_text(f"{backup_line}\n{line.strip()}\n")
    outside = site("restore", "web1", f"{site.src}/etc", "--to-host", check=False)
    assert outside.returncode == 1 and f"outside the restore root {confined}" in outside.stderr
    done = site("restore", "web1", f"{site.src}/etc", "--to-host", "--target-path", str(confined))
    assert ": success" in done.stdout
    assert (confined / str(site.src).lstrip("/") / "etc" / "passwd").read_text() == "root:x:0:0\n"
    # By hand with the restore key: rrsync refuses to write outside its directory
    # and refuses to read at all.
    key = Path(site.env["POBSYNC_HOME"]) / "ssh" / "id_restore_ed25519"
    ssh = (
        f"ssh -F none -i {key} -p {site.server.port} -o BatchMode=yes "
        f"-o UserKnownHostsFile={site.server.known_hosts_path}"
    )
    remote = f"{site.server.user}@127.0.0.1:"
    escape = subprocess.run(
        ["rsync", "-a", "-e", ssh, str(site.src / "empty"), f"{remote}../../tmp/"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert escape.returncode != 0
    read = subprocess.run(
        ["rsync", "-a", "-e", ssh, f"{remote}.", str(tmp_path / "stolen")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert read.returncode != 0  # -wo: the restore key cannot read the host


def test_it_refuses_a_partial_snapshot_unless_allowed(site, tmp_path):
    snap = site.sql("select name from pobsync_models_snapshotrecord")[0][0]
    site.sql("update pobsync_models_snapshotrecord set state='partial'")  # the only one
    refused = site("restore", "web1", str(site.src), "--snapshot", snap, "--to-dir",
                   str(tmp_path / "p"), check=False)  # fmt: skip
    assert refused.returncode == 1 and "is partial" in refused.stderr
    site("restore", "web1", f"{site.src}/etc", "--snapshot", snap, "--to-dir",
         str(tmp_path / "p"), "--allow-partial")  # fmt: skip
    assert (tmp_path / "p" / str(site.src).lstrip("/") / "etc" / "passwd").exists()
