"""Benchmark: restores, tar downloads and the browse page, each against a baseline
measured in the same run.

    .venv/bin/python bench/restore.py [--files N --megabytes M --runs K --tar-megabytes T]

Workload: bench/backup.py's generated tree (default 20,000 files, 500 MB) backed up
once into a snapshot over a loopback sshd (tests/support/sshd.py).
* Restore to a directory and to the host (over the sshd, with the restore key behind
  `rrsync -wo -no-del`): a restore job queued with request_restore(), claimed and run
  by a Runner (claim, heartbeat thread, executor, finish: what `pobsync runner` does
  per job), against the plain copy an operator would run by hand (`rsync -aHS
  --numeric-ids --relative SNAP/./PATH DEST/`, over ssh with the restore key). Fresh
  target each time, interleaved (order alternates per round), K runs (10): medians,
  and the verdict, the median of each round's job / raw ratio;
  each step is timed until its data is on disk (a sync inside the timing, after an
  untimed one before it), so each side pays exactly for its own writeback. The
  restored trees are deleted only when the run ends (the disk permitting: 8x the
  tree per round), as a deletion stalls the next writes; each round's times print.
* The tar download (pobsync_web.browse.tarstream) of the snapshot and of a tree of
  T MB (default 1,024), written to /dev/null in a child process that reports its
  peak RSS, against GNU tar -c of the same tree piped to cat (and through gzip -1
  for .tar.gz, the level pobsync uses).
* The browse page of a 10,000-entry directory (Django test client, staff user), p95
  of 40 requests, against `ls -l` of the same directory.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:] = [str(REPO)] + [p for p in sys.path if p not in ("", str(REPO / "bench"))]

from bench._site import configure_site, pair_ratio, run_in_site, timed  # noqa: E402
from bench._site import generate_tree as generate  # noqa: E402

TAR_CHILD = """
import os, resource, sys, time
from pathlib import Path
from pobsync_web.browse.tarstream import tar_stream
root, gz = Path(sys.argv[1]), sys.argv[2] == "gz"
t0 = time.perf_counter(); n = 0
with open(os.devnull, "wb") as out:
    for piece in tar_stream(root, (), gzip=gz):
        n += len(piece); out.write(piece)
dt = time.perf_counter() - t0
print(n, dt, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", type=int, default=20_000)
    ap.add_argument("--megabytes", type=int, default=500)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--tar-megabytes", type=int, default=1024)
    ap.add_argument("--workdir", help="where to build the trees (default: a tmp dir)")
    args = ap.parse_args()
    return run_in_site(
        "pobsync-bench-restore-",
        args.workdir,
        lambda work, server: run(args, work, server),
        POBSYNC_ALLOWED_HOSTS="testserver",
    )


def run(args, work: Path, server) -> int:
    from django.core.management import call_command

    from pobsync_models.models import Host, RestoreRequest
    from pobsync_models.queue import claim
    from pobsync_models.restores import RestoreAsk, request_restore, restore_spec
    from pobsync_runner.backup import run_backup
    from pobsync_runner.worker import Runner

    src = work / "src"
    print(f"workload: {args.files} files, {args.megabytes} MB, {args.runs} runs, 2 cores shared")
    print(f"generating ... ({timed(lambda: generate(src, args.files, args.megabytes)):.1f} s)")
    root, targets = work / "backups", work / "targets"
    root.mkdir()
    targets.mkdir()
    configure_site(root, server)
    host = Host.objects.create(name="web1", address="127.0.0.1", sources=[str(src)])
    backup = run_backup(host)
    assert backup.outcome == "success", backup.message
    snapshot = Path(backup.snapshot.path)
    with open(os.devnull, "w") as quiet:
        call_command(
            "ssh_key", "--restore", "--root", str(targets), "--host", "web1",
            stdout=(line := _Capture()), stderr=quiet,
        )  # fmt: skip
    with open(work / "sshd" / "authorized_keys", "a") as auth:
        auth.write(line.text.strip() + "\n")
    host.refresh_from_db()

    def ask(to_dir: Path | None, to_host: Path | None) -> RestoreAsk:
        return RestoreAsk(
            paths=(str(src),),
            to_dir=str(to_dir) if to_dir else None,
            to_host="" if to_host else None,
            target_path=str(to_host) if to_host else "",
        )

    def restore(to_dir: Path | None, to_host: Path | None) -> None:
        job = request_restore(host, ask(to_dir, to_host), "bench")
        Runner(interval=1, say=lambda _t: None).run_job(claim("bench"))
        outcome = RestoreRequest.objects.get(pk=job.restore_id).outcome
        assert outcome == "success", RestoreRequest.objects.get(pk=job.restore_id).message

    def raw(to_dir: Path | None, to_host: Path | None) -> None:
        job = request_restore(host, ask(to_dir, to_host), "bench-spec")  # paths and ssh
        spec = restore_spec(job.restore)
        job.delete()
        if to_dir:
            to_dir.mkdir()
        subprocess.run(plain_restore_argv(spec), check=True, stdout=subprocess.DEVNULL)

    times: dict[str, list[float]] = {k: [] for k in ("raw_dir", "job_dir", "raw_host", "job_host")}
    # Deleting a 500 MB tree makes this disk (ext4, mounted with discard) stall later
    # writes for seconds at random: restores measured right after an rmtree took 2.5 to
    # 5.7 s for the same copy. So the targets stay until the run ends, when the disk
    # has room for all of them.
    keep = shutil.disk_usage(targets).free > 2 * 4 * args.runs * args.megabytes * 1024 * 1024
    if not keep:
        print("not enough free disk to keep every restored tree: deleting them between rounds")
    for k in range(args.runs):
        steps = [
            ("raw_dir", lambda k=k: raw(targets / f"rd{k}", None)),
            ("job_dir", lambda k=k: restore(targets / f"jd{k}", None)),
            ("raw_host", lambda k=k: raw(None, _mk(targets / f"rh{k}"))),
            ("job_host", lambda k=k: restore(None, _mk(targets / f"jh{k}"))),
        ]
        pairs = [steps[0:2], steps[2:4]]
        for pair in pairs:
            for key, step in pair if k % 2 == 0 else list(reversed(pair)):
                times[key].append(timed(step, to_disk=True))
        print(f"round {k + 1}: " + "  ".join(f"{key} {v[-1]:.2f}s" for key, v in times.items()))
        if not keep:
            _empty(targets)
    _empty(targets)
    med = {k: statistics.median(v) for k, v in times.items()}
    print()
    print(f"{'restore':<24}{'raw rsync':>11}{'restore job':>13}{'ratio':>7}{'pair ratio':>12}")
    for label, key in (("to a directory", "dir"), ("to the host (ssh)", "host")):
        r, j = med[f"raw_{key}"], med[f"job_{key}"]
        pairs = pair_ratio(times[f"job_{key}"], times[f"raw_{key}"])
        print(f"{label:<24}{r:>10.2f}s{j:>12.2f}s{j / r:>7.2f}{pairs:>12.3f}")

    bench_tar(snapshot, work, args.tar_megabytes)
    bench_browse(snapshot, host, work)
    return 0


def plain_restore_argv(spec) -> list[str]:
    """The copy an operator would run by hand for the same restore: `rsync -aHS
    --numeric-ids --relative SNAP/./PATH... DEST/` (over ssh with the restore key, the
    transport pobsync uses too, in ssh's own cipher order), without pobsync's own options
    (progress, stats, the metadata exclude, --ignore-existing, the ssh ciphers)."""
    from pobsync_runner.ssh import remote_prefix, rsync_rsh

    argv = ["rsync", "-aHS", "--numeric-ids", "--relative"]
    argv += [f"{spec.snapshot_root}/.{path}" for path in spec.paths]
    if spec.ssh is not None:
        return [*argv[:1], "--rsh", rsync_rsh(spec.ssh, ciphers=False), *argv[1:],
                f"{remote_prefix(spec.ssh)}{spec.remote_dest}/"]  # fmt: skip
    return [*argv, f"{spec.target_dir}/"]


class _Capture:
    def __init__(self) -> None:
        self.text = ""

    def write(self, s: str) -> None:
        self.text += s

    def flush(self) -> None:
        pass


def _empty(directory: Path) -> None:
    for p in directory.iterdir():
        shutil.rmtree(p)


def _mk(path: Path) -> Path:
    path.mkdir()
    return path


def _tar_child(tree: Path, gz: bool) -> tuple[int, float, int]:
    out = subprocess.run(
        [sys.executable, "-c", TAR_CHILD, str(tree), "gz" if gz else "tar"],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    ).stdout.split()
    return int(out[0]), float(out[1]), int(out[2])


def _gnu_tar(tree: Path, gz: bool) -> float:
    """GNU tar -c (| gzip -1) | cat > /dev/null: through a pipe, because tar skips
    reading file data when its output is /dev/null itself."""
    started = time.perf_counter()
    with open(os.devnull, "wb") as null:
        tar = subprocess.Popen(
            ["tar", "-c", "-f", "-", "-C", str(tree), "."], stdout=subprocess.PIPE
        )
        stages = [tar]
        if gz:
            stages.append(
                subprocess.Popen(["gzip", "-1"], stdin=stages[-1].stdout, stdout=subprocess.PIPE)
            )
        stages.append(subprocess.Popen(["cat"], stdin=stages[-1].stdout, stdout=null))
        for proc in stages[:-1]:
            proc.stdout.close()
        for proc in stages:
            proc.wait()
    return time.perf_counter() - started


def bench_tar(snapshot: Path, work: Path, megabytes: int) -> None:
    big = work / "tar-big"
    generate(big, 1000, megabytes)
    small = work / "tar-small"
    generate(small, 100, max(megabytes // 10, 1))
    print()
    print(
        f"{'tar download':<34}{'GNU tar':>9}{'pobsync':>9}{'ratio':>7}{'MB/s':>8}{'peak RSS':>10}"
    )
    for label, tree, gz in (
        (f"{max(megabytes // 10, 1)} MB, 100 files", small, False),
        (f"snapshot ({_size_mb(snapshot)} MB)", snapshot, False),
        (f"{megabytes} MB, 1,000 files", big, False),
        (f"{megabytes} MB, 1,000 files, .tar.gz", big, True),
    ):
        tar_t = statistics.median(_gnu_tar(tree, gz) for _ in range(2))
        runs = [_tar_child(tree, gz) for _ in range(2)]
        size, ours, rss = runs[0][0], statistics.median(r[1] for r in runs), max(r[2] for r in runs)
        print(
            f"{label:<34}{tar_t:>8.2f}s{ours:>8.2f}s{ours / tar_t:>7.2f}"
            f"{size / ours / 1e6:>8.0f}{rss / 1024:>8.1f}MB"
        )


def _size_mb(tree: Path) -> int:
    total = 0
    for dirpath, _d, files in os.walk(tree):
        for f in files:
            total += os.lstat(os.path.join(dirpath, f)).st_size
    return total // (1024 * 1024)


def bench_browse(snapshot: Path, host, work: Path) -> None:
    from django.contrib.auth import get_user_model
    from django.test import Client

    wide = snapshot / "wide"
    wide.mkdir()
    for i in range(10_000):
        (wide / f"entry-{i:05d}.txt").write_bytes(b"")
    user = get_user_model().objects.create_user("bench", is_staff=True)
    client = Client()
    client.force_login(user)
    record = host.snapshots.get()
    url = f"/dashboard/hosts/{host.name}/snapshots/{record.name}/browse/?path=/wide"

    def page() -> None:
        response = client.get(url)
        assert response.status_code == 200, response.status_code

    def ls() -> None:
        subprocess.run(["ls", "-l", str(wide)], check=True, stdout=subprocess.DEVNULL)

    ours, base = [], []
    for i in range(40):
        for fn, out in ((page, ours), (ls, base)) if i % 2 == 0 else ((ls, base), (page, ours)):
            started = time.perf_counter()
            fn()
            out.append(time.perf_counter() - started)
    p95 = statistics.quantiles(ours, n=20)[-1] * 1000
    b95 = statistics.quantiles(base, n=20)[-1] * 1000
    print()
    print(
        f"browse page, 10,000-entry directory (200 shown): p95 {p95:.1f} ms; "
        f"`ls -l` of it p95 {b95:.1f} ms; ratio {p95 / b95:.2f}"
    )


if __name__ == "__main__":
    sys.exit(main())
