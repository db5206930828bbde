"""Benchmark: snapshot verification and the manifest's cost, over a real sshd.

    .venv/bin/python bench/verify.py [--files N --megabytes M --runs K --snapshots S]

Workload: bench/backup.py's generated tree (default 20,000 files, 500 MB) pulled by
run_backup() from a loopback sshd (tests/support/sshd.py). Figures, each the median of K
interleaved runs (the order alternates each round):

1. `pobsync verify HOST --snapshot NAME` (the CLI, Django start-up included) against
   what an operator would run by hand over the same files: `find SNAP -type f -print0 |
   xargs -0 xxh128sum`, with a warm page cache and a cold one (every file's pages
   dropped with posix_fadvise(DONTNEED) before each timed run, untimed).
   Also run_verify() in-process (what a runner does for a verify job: no start-up).
2. Verifying S snapshots that share most inodes (1% of the files changed between
   backups) against verifying one of them, warm and cold page cache, through the CLI
   and through run_verify() in-process.
3. The manifest's cost during a backup: run_backup() full and unchanged incremental,
   with the manifest against the same backup with it switched off (no --log-file, no
   manifest build).
4. Peak RSS of the `pobsync verify` process (RUSAGE_SELF; children excluded) with the
   full tree and with a tenth of the files.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:] = [str(REPO)] + [p for p in sys.path if p not in ("", str(REPO / "bench"))]

from bench._site import configure_site, pair_ratio, run_in_site, timed  # noqa: E402
from bench._site import generate_tree as generate  # noqa: E402

BIN = Path(sys.executable).parent


def drop_cache(tree: Path) -> None:
    """Evict the tree's file pages (clean after sync) so the next read hits the disk."""
    os.sync()
    for dirpath, _, filenames in os.walk(tree):
        for name in filenames:
            try:
                fd = os.open(os.path.join(dirpath, name), os.O_RDONLY | os.O_NOFOLLOW)
            except OSError:
                continue
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def cli_verify(*argv: str) -> int:
    """Runs `pobsync verify ...`; returns its own peak RSS in KiB."""
    r, w = os.pipe()
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "bench" / "_pobsync_rss.py"), "verify", *argv],
        pass_fds=(w,),
        stdout=subprocess.DEVNULL,
        env={
            **os.environ,
            "PATH": f"{BIN}:{os.environ['PATH']}",
            "POBSYNC_BENCH_RSS_FD": str(w),
        },
    )
    os.close(w)
    code = proc.wait()
    peak = os.read(r, 100)
    os.close(r)
    if code != 0:
        raise SystemExit(f"pobsync verify {' '.join(argv)} failed ({code})")
    return int(peak)


def xxh128sum_tree(tree: Path) -> None:
    find = subprocess.Popen(["find", str(tree), "-type", "f", "-print0"], stdout=subprocess.PIPE)
    subprocess.run(
        ["xargs", "-0", "xxh128sum"],
        stdin=find.stdout,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,  # its progress display
    )
    find.stdout.close()
    if find.wait() != 0:
        raise SystemExit("find failed")


@contextlib.contextmanager
def manifest_off(*, keep_log: bool = False, keep_follower: bool = False):
    """The same backup without the manifest: no --log-file options, no log followed
    while rsync runs, no build. keep_log keeps rsync's transfer log (and its copy from
    stdout), keep_follower the thread that follows it too: bench/full_manifest.py's
    steps in between."""
    import pobsync_runner.backup as backup
    import pobsync_runner.pull as pull
    import pobsync_runner.rsync as rsync

    class NoFollower:
        def __init__(self, *args) -> None:
            pass

        def start(self) -> None:
            pass

        def finish(self) -> None:
            pass

        def discard(self) -> None:
            pass

    saved = (backup.write_snapshot_manifest, rsync.transfer_log_args, pull.LogFollower)
    backup.write_snapshot_manifest = lambda *a, **k: ""
    if not keep_log:
        rsync.transfer_log_args = lambda path, **kw: []
    if not keep_follower:
        pull.LogFollower = NoFollower
    try:
        yield
    finally:
        backup.write_snapshot_manifest, rsync.transfer_log_args, pull.LogFollower = saved


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", type=int, default=20_000)
    ap.add_argument("--megabytes", type=int, default=500)
    ap.add_argument("--runs", type=int, default=4)
    ap.add_argument("--snapshots", type=int, default=10)
    ap.add_argument("--workdir", help="where to build the source and backups (default: a tmp dir)")
    args = ap.parse_args()
    if shutil.which("xxh128sum") is None:
        raise SystemExit("xxh128sum missing: apt-get install xxhash")

    return run_in_site(
        "pobsync-bench-verify-", args.workdir, lambda work, server: run(args, work, server)
    )


def run(args, work: Path, server) -> int:
    from pobsync_models.models import BackupRun, Host
    from pobsync_runner.backup import run_backup
    from pobsync_runner.verify import VerifyRequest, run_verify

    src, small = work / "src", work / "small"
    print(f"workload: {args.files} files, {args.megabytes} MB, {args.runs} runs, 2 cores shared")
    print(
        f"generating source ... ({timed(lambda: generate(src, args.files, args.megabytes)):.1f} s)"
    )
    generate(small, max(args.files // 10, 1), max(args.megabytes // 10, 1))
    root = work / "backups"
    root.mkdir()
    configure_site(root, server)

    def host(name: str, source: Path) -> Host:
        return Host.objects.create(name=name, address="127.0.0.1", sources=[str(source)])

    def backup(h: Host) -> BackupRun:
        run = run_backup(h)
        if run.outcome != BackupRun.Outcome.SUCCESS:
            raise SystemExit(f"backup {h.name}: {run.outcome} {run.message}")
        return run

    # 3. The manifest's cost during a backup.
    times: dict[str, list[float]] = {k: [] for k in ("on_full", "off_full", "on_inc", "off_inc")}
    for k in range(args.runs):
        on, off = host(f"on{k}", src), host(f"off{k}", src)

        def with_manifest(h=on) -> None:
            backup(h)

        def without(h=off) -> None:
            with manifest_off():
                backup(h)

        for phase in ("full", "inc"):
            steps = [(f"on_{phase}", with_manifest), (f"off_{phase}", without)]
            for key, step in steps if k % 2 == 0 else list(reversed(steps)):
                # To disk: a full backup's writeback would otherwise land in the next step.
                times[key].append(timed(step, to_disk=True))
        # The snapshots stay until the run ends: deleting them stalls the next writes
        # on this disk (ext4 with discard) for seconds at random.
    for k in range(args.runs - 1):  # the last round's "on" host is verified below
        for h in Host.objects.filter(name__in=[f"on{k}", f"off{k}"]):
            shutil.rmtree(root / h.name, ignore_errors=True)
            h.delete()
    med = {k: statistics.median(v) for k, v in times.items()}
    print()
    print(
        f"{'backup (run_backup)':<24}{'no manifest':>12}{'manifest':>10}{'ratio':>7}"
        f"{'pair ratio':>12}"
    )
    for label, key in (("full", "full"), ("unchanged incremental", "inc")):
        off, on = med[f"off_{key}"], med[f"on_{key}"]
        pairs = pair_ratio(times[f"on_{key}"], times[f"off_{key}"])
        print(f"{label:<24}{off:>11.2f}s{on:>9.2f}s{on / off:>7.3f}{pairs:>12.3f}")

    # 1. One snapshot: pobsync verify against xxh128sum over the same files.
    subject = Host.objects.get(name=f"on{args.runs - 1}")
    snap = sorted(p for p in (root / subject.name).iterdir() if p.name[:1].isdigit())[-1]
    vt: dict[str, list[float]] = {
        f"{side}_{cache}": [] for side in ("sum", "ours", "lib") for cache in ("warm", "cold")
    }
    rss: list[int] = []
    request = VerifyRequest(snapshot=snap.name)
    for k in range(args.runs):
        steps = [
            ("sum", lambda: xxh128sum_tree(snap)),
            ("ours", lambda: rss.append(cli_verify(subject.name, "--snapshot", snap.name))),
            ("lib", lambda: run_verify(subject, request)),
        ]
        for key, step in steps if k % 2 == 0 else list(reversed(steps)):
            drop_cache(snap)
            vt[f"{key}_cold"].append(timed(step))
            vt[f"{key}_warm"].append(timed(step))
    vm = {k: statistics.median(v) for k, v in vt.items()}
    print()
    head = ("verify one snapshot", "xxh128sum", "pobsync CLI", "ratio", "run_verify()", "ratio")
    print(f"{head[0]:<24}{head[1]:>11}{head[2]:>13}{head[3]:>7}{head[4]:>14}{head[5]:>7}")
    for label in ("warm", "cold"):
        base, ours, lib = vm[f"sum_{label}"], vm[f"ours_{label}"], vm[f"lib_{label}"]
        print(
            f"{label + ' page cache':<24}{base:>10.2f}s{ours:>12.2f}s{ours / base:>7.2f}"
            f"{lib:>13.2f}s{lib / base:>7.2f}"
        )

    # 2. S snapshots sharing most inodes against one of them.
    many = host("many", src)
    files = sorted(src.rglob("*.dat"))
    step_n = max(len(files) // 100, 1)
    for i in range(args.snapshots):
        if i:
            for path in files[i::step_n][: len(files) // 100]:
                path.write_bytes(path.read_bytes()[::-1])
        backup(many)
    newest = sorted(p.name for p in (root / "many").iterdir() if p.name[:1].isdigit())[-1]
    mt: dict[str, list[float]] = {
        f"{w}_{c}": [] for w in ("one", "all", "lib_one", "lib_all") for c in ("warm", "cold")
    }
    one_request, all_request = VerifyRequest(snapshot=newest), VerifyRequest()
    for k in range(args.runs):
        steps = [
            ("one", lambda: cli_verify("many", "--snapshot", newest)),
            ("all", lambda: cli_verify("many")),
            ("lib_one", lambda: run_verify(many, one_request)),
            ("lib_all", lambda: run_verify(many, all_request)),
        ]
        for key, step in steps if k % 2 == 0 else list(reversed(steps)):
            drop_cache(root / "many")
            mt[f"{key}_cold"].append(timed(step))
            mt[f"{key}_warm"].append(timed(step))
    print()
    print(f"verify {args.snapshots} snapshots sharing most inodes against one of them:")
    for cache in ("warm", "cold"):
        for how, prefix in (("CLI", ""), ("run_verify()", "lib_")):
            one = statistics.median(mt[f"{prefix}one_{cache}"])
            every = statistics.median(mt[f"{prefix}all_{cache}"])
            print(
                f"  {how + ',':<14}{cache} page cache: {every:.2f}s against {one:.2f}s: "
                f"ratio {every / one:.2f}"
            )

    # 4. Peak RSS flat in file count.
    tiny = host("tiny", small)
    backup(tiny)
    small_rss = cli_verify("tiny")
    print()
    print(
        f"pobsync verify peak RSS (own process): {max(rss) / 1024:.1f} MB with "
        f"{args.files} files, {small_rss / 1024:.1f} MB with {max(args.files // 10, 1)} files"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
