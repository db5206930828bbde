"""Storage benchmark: the space scan against `du`, and the claim with a storage filter.

    .venv/bin/python bench/storage.py                    # ~3 minutes on 2 cores
    .venv/bin/python bench/storage.py --files 5000 --repeats 3 --databases sqlite   # quick

1. Space scan. A host with 20 snapshots of --files files (default 50,000 in 500
   directories), made as rsync --link-dest makes them: each a hard-linked copy of the
   previous (`cp -al`) with 1% of the files rewritten (new inodes) and 0.2% added.
   Baseline: `du -s` of the host directory (what an operator runs; it counts each
   inode once). Ours: the first (full) scan, pobsync_runner.spacescan.scan_host.
   Then one more snapshot: the incremental rescan (walks the new snapshot and its
   predecessor) against `du -s` of the new snapshot alone. Page cache warm for both
   (one untimed du first); median of --repeats interleaved runs.
   Targets (issue 11): first scan <= 1.5x du -s; incremental <= 1.2x du -s of one snapshot.
2. Peak RSS of the scan (a child process, RUSAGE_SELF minus its RSS before the scan),
   for --files and --files/10 per snapshot: flat in the file count.
3. Claim p99 at depth 10,000 (500 hosts on two storages) with the storage filter
   (a runner serving one storage) against the claim without it (a runner serving
   every storage), single process, interleaved claim by claim in a random order
   (--block 1, so load from elsewhere on the machine hits both alike); SQLite and
   MariaDB (--claim-only: this part alone).
   Target: ratio <= 1.1.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:] = [str(REPO)] + [p for p in sys.path if p not in ("", str(REPO / "bench"))]
SNAPSHOTS = 20


def _django(url: str) -> None:
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pobsync_models.settings")
    os.environ.setdefault("POBSYNC_HOME", tempfile.mkdtemp(prefix="pobsync-bench-home-"))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def du(*paths: Path) -> None:
    subprocess.run(["du", "-s", *map(str, paths)], check=True, capture_output=True)


# -- building snapshots ------------------------------------------------------------------


def snapshot_name(i: int) -> str:
    return f"2026-01-{1 + i // 24:02d}T{i % 24:02d}0000Z"


def first_tree(dest: Path, files: int, rng: random.Random) -> None:
    per_dir = 100
    for d in range(max(1, files // per_dir)):
        sub = dest / "data" / f"d{d:04d}"
        sub.mkdir(parents=True)
        for f in range(per_dir):
            (sub / f"f{f:03d}").write_bytes(rng.randbytes(rng.randint(100, 3000)))


def next_tree(prev: Path, dest: Path, files: int, rng: random.Random, k: int) -> None:
    subprocess.run(["cp", "-al", str(prev), str(dest)], check=True)
    dirs = sorted((dest / "data").iterdir())
    for _ in range(files // 100):  # 1% rewritten: new inodes, as rsync writes them
        path = rng.choice(dirs) / f"f{rng.randrange(100):03d}"
        path.unlink(missing_ok=True)
        path.write_bytes(rng.randbytes(rng.randint(100, 3000)))
    for n in range(files // 500):  # 0.2% added
        (rng.choice(dirs) / f"new{k}-{n}").write_bytes(rng.randbytes(500))


def build_host(name: str, root: Path, files: int, count: int) -> tuple[object, Path]:
    from django.utils import timezone

    from pobsync_models.models import Host, SnapshotRecord

    rng = random.Random(name)
    host_dir = root / name
    host_dir.mkdir(parents=True)
    prev = None
    for i in range(count):
        dest = host_dir / snapshot_name(i)
        if prev is None:
            first_tree(dest, files, rng)
        else:
            next_tree(prev, dest, files, rng, i)
        prev = dest
    host = Host.objects.create(name=name, address="127.0.0.1")
    now = timezone.now()
    SnapshotRecord.objects.bulk_create(
        SnapshotRecord(
            host=host,
            name=snapshot_name(i),
            path=str(host_dir / snapshot_name(i)),
            state="complete",
            started_at=now,
            finished_at=now,
        )  # fmt: skip
        for i in range(count)
    )
    return host, host_dir


def add_snapshot(host, host_dir: Path, files: int, i: int) -> Path:
    from django.utils import timezone

    from pobsync_models.models import SnapshotRecord

    dest = host_dir / snapshot_name(i)
    next_tree(host_dir / snapshot_name(i - 1), dest, files, random.Random(i), i)
    now = timezone.now()
    SnapshotRecord.objects.create(
        host=host, name=dest.name, path=str(dest), state="complete",
        started_at=now, finished_at=now,
    )  # fmt: skip
    return dest


# -- 1 and 2: the scan ---------------------------------------------------------------------


def bench_scan(work: Path, files: int, repeats: int) -> dict:
    from pobsync_models.models import SnapshotRecord
    from pobsync_runner.spacescan import scan_host

    root = work / "storage"
    t0 = time.perf_counter()
    host, host_dir = build_host("big", root, files, SNAPSHOTS)
    built = time.perf_counter() - t0
    du(host_dir)  # warm the page cache for both sides
    scan_host(host, host_dir, full=True)
    base, ours = [], []
    for k in range(repeats):
        pair = [
            ("du", lambda: du(host_dir)),
            ("scan", lambda: scan_host(host, host_dir, full=True)),
        ]
        for label, fn in pair if k % 2 == 0 else reversed(pair):
            (base if label == "du" else ours).append(timed(fn))
    first = {"du": statistics.median(base), "scan": statistics.median(ours)}

    new = add_snapshot(host, host_dir, files, SNAPSHOTS)
    du(new)
    walked = scan_host(host, host_dir).walked
    base, ours = [], []
    last_two = host.snapshots.order_by("-name")[:2]
    ids = list(last_two.values_list("pk", flat=True))

    def rescan() -> None:
        SnapshotRecord.objects.filter(pk__in=ids).update(scan_key="")
        scan_host(host, host_dir)

    for k in range(repeats):
        pair = [("du", lambda: du(new)), ("scan", rescan)]
        for label, fn in pair if k % 2 == 0 else reversed(pair):
            (base if label == "du" else ours).append(timed(fn))
    incremental = {"du": statistics.median(base), "scan": statistics.median(ours)}
    return {"built_seconds": built, "first": first, "incremental": incremental, "walked": walked}


def child_scan(url: str, host_name: str, host_dir: str) -> None:
    import tracemalloc

    os.environ["DATABASE_URL"] = url  # migrated by the parent: no migrate here
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pobsync_models.settings")
    os.environ.setdefault("POBSYNC_HOME", tempfile.mkdtemp(prefix="pobsync-bench-home-"))
    import django

    django.setup()
    from pobsync_models.models import Host
    from pobsync_runner.spacescan import scan_host

    host = Host.objects.get(name=host_name)
    scan_host(host, Path(host_dir), full=True)  # once: imports and connection set up
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    scan_host(host, Path(host_dir), full=True)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    scan_host(host, Path(host_dir), full=True)
    _, traced = tracemalloc.get_traced_memory()
    print(json.dumps({"before_kib": before, "peak_kib": after, "traced_kib": traced // 1024}))


def bench_rss(url: str, work: Path, files: int) -> dict:
    small_files = max(100, files // 10)
    build_host("small", work / "storage", small_files, SNAPSHOTS)
    out = {}
    for name, count in (("small", small_files), ("big", files)):
        done = subprocess.run(
            [sys.executable, __file__, "--child-scan", url, name, str(work / "storage" / name)],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        figures = json.loads(done.stdout.strip().splitlines()[-1])
        out[name] = {"files_per_snapshot": count, **figures}
    return out


# -- 3: the claim ----------------------------------------------------------------------------


def bench_claim(url: str, depth: int, rounds: int, block: int) -> dict:
    from django.db import connection
    from django.utils import timezone

    from pobsync_models.models import BackupJob, Host, Storage
    from pobsync_models.queue import claim, finish

    Host.objects.update(running_job=None)
    BackupJob.objects.all().delete()
    Host.objects.all().delete()
    other = Storage.objects.create(name=f"other{secrets.token_hex(2)}", path="/nonexistent")
    mine = Storage.objects.create(name=f"mine{secrets.token_hex(2)}", path="/nonexistent")
    hosts = Host.objects.bulk_create(
        Host(name=f"c{i}", address="127.0.0.1", storage=mine if i % 2 else other)
        for i in range(500)
    )
    now = timezone.now()
    BackupJob.objects.bulk_create(
        (
            BackupJob(host=hosts[i % 500], storage_id=hosts[i % 500].storage_id, run_after=now)
            for i in range(depth)
        ),
        batch_size=1000,
    )
    connection.ensure_connection()
    lat: dict[str, list[float]] = {"without": [], "with": []}
    chooser = random.Random(20261130)
    served = {"without": None, "with": {mine.pk}}
    for _round in range(rounds):
        # A random order in each round: a fixed pattern lines up with the periodic costs
        # (SQLite's WAL checkpoint every N commits) and puts them all on one side.
        order = ["without", "with"] if chooser.random() < 0.5 else ["with", "without"]
        for label in order:
            for _ in range(block):
                t0 = time.perf_counter()
                lease = claim("bench:1", storages=served[label])
                lat[label].append(time.perf_counter() - t0)
                assert lease is not None
                finish(lease, BackupJob.State.SUCCEEDED)
                BackupJob.objects.create(host_id=lease.host_id, run_after=timezone.now())
    out = {}
    for label, values in lat.items():
        values.sort()
        out[label] = {
            "p50_ms": 1000 * values[len(values) // 2],
            "p99_ms": 1000 * values[int(len(values) * 0.99)],
            "claims": len(values),
        }
    return out


def _mariadb_url():
    from contextlib import ExitStack

    from tests.support.mariadb import fresh_database

    stack = ExitStack()
    return stack.enter_context(fresh_database("pobsync_bench")), stack.close


def child_claim(url: str, depth: int, rounds: int, block: int) -> None:
    _django(url)
    print(json.dumps(bench_claim(url, depth, rounds, block)))


def scan_report(url: str, work: Path, args: argparse.Namespace) -> None:
    print(f"space scan: {SNAPSHOTS} snapshots x {args.files} files, median of {args.repeats}")
    scan = bench_scan(work, args.files, args.repeats)
    f, i = scan["first"], scan["incremental"]
    print(f"  built the tree in {scan['built_seconds']:.0f} s")
    print(
        f"  first scan      du -s host dir {f['du']:.3f} s   scan {f['scan']:.3f} s   "
        f"ratio {f['scan'] / f['du']:.2f}  (target <= 1.5)"
    )
    print(
        f"  incremental     du -s new snapshot {i['du']:.3f} s   rescan {i['scan']:.3f} s "
        f"(walked {len(scan['walked'])})   ratio {i['scan'] / i['du']:.2f}  (target <= 1.2)"
    )
    for r in bench_rss(url, work, args.files).values():
        print(
            f"  peak RSS, {r['files_per_snapshot']:>6} files/snapshot: "
            f"{r['peak_kib'] / 1024:.1f} MiB (before the scan {r['before_kib'] / 1024:.1f} MiB,"
            f" scan adds {(r['peak_kib'] - r['before_kib']) / 1024:.1f} MiB; Python heap"
            f" peak during the scan {r['traced_kib'] / 1024:.2f} MiB)"
        )


def claim_report(work: Path, database: str, args: argparse.Namespace) -> None:
    drop = None
    if database == "mariadb":
        db_url, drop = _mariadb_url()
    else:
        db_url = f"sqlite:///{work / 'claim.sqlite3'}"
    try:
        done = subprocess.run(
            [sys.executable, __file__, "--child-claim", db_url, str(args.depth),
             str(args.rounds), str(args.block)],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
    finally:
        if drop is not None:
            drop()
    c = json.loads(done.stdout.strip().splitlines()[-1])
    print(
        f"claim at depth {args.depth} on {database} ({c['with']['claims']} claims each): "
        f"p99 without filter {c['without']['p99_ms']:.2f} ms, with storage filter "
        f"{c['with']['p99_ms']:.2f} ms, ratio "
        f"{c['with']['p99_ms'] / c['without']['p99_ms']:.2f} (target <= 1.1); "
        f"p50 {c['without']['p50_ms']:.2f} / {c['with']['p50_ms']:.2f} ms"
    )


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--child-scan":
        child_scan(*sys.argv[2:5])
        return 0
    if len(sys.argv) > 1 and sys.argv[1] == "--child-claim":
        child_claim(sys.argv[2], *map(int, sys.argv[3:6]))
        return 0
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--depth", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=2000)
    parser.add_argument("--block", type=int, default=1)
    parser.add_argument("--databases", default="sqlite mariadb")
    parser.add_argument("--claim-only", action="store_true", help="skip the space scan part")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="pobsync-bench-storage-"))
    try:
        if not args.claim_only:
            url = f"sqlite:///{work / 'bench.sqlite3'}"
            _django(url)
            scan_report(url, work, args)
        for database in args.databases.split():
            claim_report(work, database, args)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
