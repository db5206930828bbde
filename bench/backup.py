"""Benchmark: pobsync backups against the plain copy an operator would run by hand.

    .venv/bin/python bench/backup.py --sizes 20000      # full matrix at 20,000 files
    .venv/bin/python bench/backup.py --sizes 100000     # incrementals at 100,000 files
    .venv/bin/python bench/backup.py --sizes 100000 --depths 1 --big-full   # and full
    .venv/bin/python bench/backup.py --quick    # 2,000 files, 2 rounds: a smoke run

Workload: generated source trees of 4 KiB files in 100-file directories, served by a
real sshd on 127.0.0.1 (tests/support/sshd.py), placed at depth 1 (`/pobsync-bench-X`)
and at depth 4 (`/pobsync-bench-X/a/b/c`) of the remote's file system (run as root; as
another user the trees go under the work directory, which is deeper, and it says so).

Contenders, each timed after an untimed `sync` and until its data is on disk (a `sync`
inside the timing), interleaved (the order alternates each round, so each goes first
equally often), medians of --rounds:
- plain: `rsync -a --numeric-ids [--link-dest=PREV] host:SRC/ DEST/` with pobsync's
  ssh options for the key and known hosts but ssh's own cipher order: the baseline,
  the copy an operator would write by hand;
- runner: a real job through the runner (enqueue, claim, lock, stage, rsync, commit,
  record: Runner.process_one() in this process, as a long-running runner does);
- CLI: `pobsync backup <host>` as its own process (Python and Django start-up included);
- old argv (unchanged incremental, 20,000-file trees): the single `--relative` rsync
  pobsync ran before one rsync per source, by hand, output discarded: what it paid.

Steps: full (no base), unchanged incremental, and an incremental after 1% of the files
were rewritten (same sizes, new content). 100,000-file trees time the two incrementals
only, without the old argv; their full copies are made once, untimed (they only make
bases), unless --big-full times a full backup each round too (on hosts of its own).
Every snapshot and copy stays until the run ends (deleting them between rounds stalled
the next writes on this disk for seconds at random); 20,000-file trees get new hosts
each round, so each round's full step is one. Printed: the medians, and
as the verdict the median of each round's own ratio. Sizes, depths and rounds are
options; the default matrix takes about 45 minutes on the shared 2-core machine at load
10, so the documented figures come from two invocations (--sizes 20000, then --sizes
100000).

Also printed: the runner's own CPU per file (RUSAGE_SELF of this process around the
job, over the files in the snapshot), the CLI process's own peak RSS (wait4 of a child
that bench/_pobsync_rss.py forks while it is small, so it does not inherit this driver's
high-water mark; rsync and ssh excluded), retention planning over 100,000 records and
discovery of 1,000 snapshot directories.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# bench/queue.py would shadow the standard library's `queue` (imported by Django via
# asgiref): put the repository root, not this folder, on the path.
sys.path[:] = [str(REPO)] + [p for p in sys.path if p not in ("", str(REPO / "bench"))]

from bench._site import configure_site, pair_ratio, run_in_site, timed  # noqa: E402

BIN = Path(sys.executable).parent
FILE_SIZE = 4096


def generate(src: Path, files: int) -> None:
    """`files` files of FILE_SIZE bytes in 100-file directories."""
    block = os.urandom(FILE_SIZE * 64)
    for i in range(files):
        d = src / f"d{i // 100:04d}"
        if i % 100 == 0:
            d.mkdir(parents=True, exist_ok=True)
        offset = (i * 4099) % (len(block) - FILE_SIZE)
        (d / f"f{i:06d}.dat").write_bytes(block[offset : offset + FILE_SIZE])


def change_one_percent(src: Path, files: int, salt: int) -> None:
    """Rewrite every 100th file (1%) with new content of the same size."""
    for i in range(salt % 100, files, 100):
        path = src / f"d{i // 100:04d}" / f"f{i:06d}.dat"
        path.write_bytes(os.urandom(FILE_SIZE))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="2,000 files, 2 rounds")
    ap.add_argument("--sizes", default="20000,100000", help="file counts (comma-separated)")
    ap.add_argument("--depths", default="1,4", help="source depths (comma-separated)")
    # even, so each side goes first equally often (the order alternates per round)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--workdir", help="where to build backups (default: a tmp dir)")
    ap.add_argument(
        "--big-full",
        action="store_true",
        help="time the full step on trees over 20,000 files too (new hosts per round)",
    )
    args = ap.parse_args()
    if args.quick:
        args.sizes, args.rounds = "2000", 2

    def body(work: Path, server) -> int:
        tree_root = Path(f"/pobsync-bench-{uuid.uuid4().hex[:8]}")
        if os.geteuid() != 0:  # cannot write to "/": deeper, and the output says how deep
            tree_root = work / "trees" / "t"
            tree_root.parent.mkdir()
        return run(args, work, tree_root, server)

    return run_in_site("pobsync-bench-", args.workdir, body)


class Bench:
    def __init__(self, args, work: Path, server) -> None:

        self.args, self.work, self.server = args, work, server
        self.root = work / "backups"
        self.plain_root = work / "plain"
        self.root.mkdir()
        self.plain_root.mkdir()
        self.config = configure_site(self.root, server)
        self.rss: list[int] = []
        self.runners: dict[int, object] = {}
        self.cpu_per_file: dict[tuple[int, int, str], list[float]] = {}

    def host(self, name: str, source: Path):
        from pobsync_models.models import Host

        return Host.objects.create(name=name, address="127.0.0.1", sources=[str(source)])

    def plain(
        self, source: Path, dest: Path, prev: Path | None, extra=(), stdout=subprocess.DEVNULL
    ) -> None:
        """The plain copy; `extra` options (and where its stdout goes) for a variant."""
        from pobsync_models.specs import host_spec
        from pobsync_runner.ssh import remote_prefix, rsync_rsh

        spec = host_spec(self.any_host, self.config)
        argv = ["rsync", "-a", "--numeric-ids", "--rsh", rsync_rsh(spec.ssh, ciphers=False)]
        if prev is not None:
            argv.append(f"--link-dest={prev}")
        argv += [*extra, f"{remote_prefix(spec.ssh)}{source}/", f"{dest}/"]
        subprocess.run(argv, check=True, stdout=stdout)

    def old_argv(self, host, dest: Path, prev: Path) -> None:
        from pobsync_models.specs import host_spec
        from pobsync_runner.rsync import rsync_argv

        argv = rsync_argv(host_spec(host, self.config), dest, link_dest=prev)
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)

    def runner_job(self, host, key: tuple[int, int, str]) -> None:
        from pobsync_models.models import BackupRun

        runner = self.runners.pop(host.pk, None)
        if runner is None:  # not prepared (an untimed base): queue it now
            self.prepare_job(host)
            runner = self.runners.pop(host.pk)
        before = resource.getrusage(resource.RUSAGE_SELF)
        if not runner.process_one():
            raise SystemExit("the runner found no job")
        after = resource.getrusage(resource.RUSAGE_SELF)
        run = BackupRun.objects.filter(host=host).latest("pk")
        if run.outcome != BackupRun.Outcome.SUCCESS:
            raise SystemExit(f"runner job for {host.name}: {run.outcome}: {run.message}")
        cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
        self.cpu_per_file.setdefault(key, []).append(cpu / max(run.files_total or 1, 1) * 1e6)

    def prepare_job(self, host) -> None:
        """Untimed: queue the job and build the runner; process_one() is what is timed."""
        from pobsync_models.queue import enqueue
        from pobsync_runner.worker import Runner

        enqueue(host)
        self.runners[host.pk] = Runner(interval=1.0, say=lambda _text: None)

    def cli(self, host) -> None:
        r, w = os.pipe()
        proc = subprocess.Popen(
            [sys.executable, str(REPO / "bench" / "_pobsync_rss.py"), "backup", host.name],
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
            raise SystemExit(f"pobsync backup {host.name} failed ({code})")
        self.rss.append(int(peak))

    def newest(self, host) -> Path:
        return Path(host.snapshots.filter(state="complete").latest("name").path)


def run(args, work: Path, tree_root: Path, server) -> int:
    sizes = [int(x) for x in args.sizes.split(",")]
    depths = [int(x) for x in args.depths.split(",")]
    load = os.getloadavg()
    print(
        f"workload: {'/'.join(f'{n:,}' for n in sizes)} files of {FILE_SIZE} bytes at depths "
        f"{depths}, {args.rounds} interleaved rounds; {os.cpu_count()} CPUs, load average "
        f"{load[0]:.2f} at the start; rsync {rsync_version()}"
    )
    b = Bench(args, work, server)
    results: dict[tuple[int, int, str, str], list[float]] = {}
    tops = [Path(f"{tree_root}-n{files}-d{depth}") for files in sizes for depth in depths]
    try:
        for files in sizes:
            for depth in depths:
                top = Path(f"{tree_root}-n{files}-d{depth}")
                src = top.joinpath(*["sub"] * (depth - 1))
                src.mkdir(parents=True)
                t = timed(lambda src=src, files=files: generate(src, files))
                print(
                    f"generated {files:,} files at {src} (depth {len(src.parts) - 1}) in {t:.1f} s"
                )
                one_tree(b, results, src, files, depth)
    finally:  # only now: a deletion stalls the next writes (see one_tree)
        for top in tops:
            shutil.rmtree(top, ignore_errors=True)
    report(b, results, sizes, depths)
    bench_retention()
    bench_discovery(work)
    return 0


def rsync_version() -> str:
    out = subprocess.run(["rsync", "--version"], capture_output=True, text=True).stdout
    return out.split()[2] if out else "?"


def one_tree(b: Bench, results, src: Path, files: int, depth: int) -> None:
    """Every round's snapshots stay until the run ends: deleting them between rounds
    stalled the next writes on this disk (ext4 with discard) for seconds at random.
    20,000-file trees get new hosts each round, so each round starts with a full."""
    big = files > 20_000
    tag = f"n{files}d{depth}"
    plain_dir = b.plain_root / tag
    plain_dir.mkdir()
    seq = iter(range(1_000_000))
    hosts = {"run": b.host(f"run-{tag}", src), "cli": b.host(f"cli-{tag}", src)}
    b.any_host = h_old = b.host(f"old-{tag}", src)

    def record(step: str, steps, k: int) -> None:
        b.prepare_job(hosts["run"])
        for name, fn in steps if k % 2 == 0 else list(reversed(steps)):
            # To disk: a full copy's writeback would otherwise land in the next step.
            results.setdefault((files, depth, step, name), []).append(timed(fn, to_disk=True))

    # Plain and old-argv bases: plain copies of the tree.
    state = {"plain": None, "old": None}

    def plain_step():
        dest = plain_dir / f"p{next(seq)}"
        b.plain(src, dest, state["plain"])
        state["plain"] = dest

    def old_step():
        dest = plain_dir / f"o{next(seq)}"
        dest.mkdir()
        b.old_argv(h_old, dest, state["old"])

    def runner(step: str):
        return lambda: b.runner_job(hosts["run"], (files, depth, step))

    def cli() -> None:  # the current round's host, like runner()
        b.cli(hosts["cli"])

    if big:  # bases once, untimed
        plain_step()
        runner("full")()
        cli()
    else:
        state["old"] = old_base(b, h_old, plain_dir)
    for k in range(b.args.rounds):
        if big and b.args.big_full:  # on hosts of its own: the incrementals' bases stay
            kept = hosts, state["plain"]
            hosts = {w: b.host(f"{w}-{tag}-full{k}", src) for w in ("run", "cli")}
            state["plain"] = None
            record("full", [("plain", plain_step), ("runner", runner("full")), ("CLI", cli)], k)
            hosts, state["plain"] = kept
        if not big:
            state["plain"] = None
            hosts = {w: b.host(f"{w}-{tag}-r{k}", src) for w in ("run", "cli")}
            record(
                "full",
                [
                    ("plain", plain_step),
                    ("runner", runner("full")),
                    ("CLI", cli),
                ],
                k,
            )
        unchanged = [
            ("plain", plain_step),
            ("runner", runner("unchanged")),
            ("CLI", cli),
        ]
        record("unchanged", unchanged if big else [*unchanged, ("old argv", old_step)], k)
        change_one_percent(src, files, k)
        if not big:
            b.old_argv(h_old, state["old"], None)  # untimed: the old argv's base follows
        record(
            "1% changed",
            [
                ("plain", plain_step),
                ("runner", runner("1% changed")),
                ("CLI", cli),
            ],
            k,
        )
        print(f"  {files:,} files, depth {depth}: round {k + 1}/{b.args.rounds} done", flush=True)


def old_base(b: Bench, h_old, plain_dir: Path) -> Path:
    """A base in the layout the old argv expects (the tree at its full path), untimed."""
    dest = plain_dir / "old-base"
    dest.mkdir()
    b.old_argv(h_old, dest, None)
    return dest


def report(b: Bench, results, sizes, depths) -> None:
    print()
    print("medians in seconds; ratio = contender / plain copy, same run")
    head = f"{'files':>7} {'depth':>5}  {'step':<11}{'plain':>8}{'runner':>14}{'CLI':>14}"
    print(head + f"{'old argv':>14}{'runner CPU':>13}")
    for files in sizes:
        for depth in depths:
            for step in ("full", "unchanged", "1% changed"):
                plain = results.get((files, depth, step, "plain"))
                if not plain:
                    continue
                base = statistics.median(plain)
                line = f"{files:>7} {depth:>5}  {step:<11}{base:>7.2f}s"
                for name in ("runner", "CLI", "old argv"):
                    v = results.get((files, depth, step, name))
                    if v:
                        m = statistics.median(v)
                        line += f"{m:>7.2f}s x{m / base:<4.2f}"
                    else:
                        line += " " * 14
                cpu = b.cpu_per_file.get((files, depth, step))
                if cpu:
                    line += f"{statistics.median(cpu):>8.1f} us/f"
                print(line)
    print()
    print("median of each round's own ratio to the plain copy (the verdict: the disk drifts)")
    for files in sizes:
        for depth in depths:
            for step in ("full", "unchanged", "1% changed"):
                plain = results.get((files, depth, step, "plain"))
                line = f"{files:>7} {depth:>5}  {step:<11}"
                for name in ("runner", "CLI", "old argv"):
                    v = results.get((files, depth, step, name))
                    if plain and v and len(v) == len(plain):
                        line += f"  {name} x{pair_ratio(v, plain):.3f}"
                if plain:
                    print(line)
    print()
    print(
        f"pobsync CLI peak RSS (own process, rsync excluded): median "
        f"{statistics.median(b.rss) / 1024:.1f} MB, max {max(b.rss) / 1024:.1f} MB "
        f"over {len(b.rss)} backups"
    )


def bench_retention() -> None:
    from datetime import UTC, datetime, timedelta

    from pobsync_models.retention import Snapshot, plan_retention
    from pobsync_models.specs import RetentionPolicy, SnapshotName

    start = datetime(2015, 1, 1, tzinfo=UTC)
    records = [
        Snapshot(str(SnapshotName.for_time(start + timedelta(hours=i))), "complete")
        for i in range(100_000)
    ]
    policy = RetentionPolicy(keep_last=5, keep_hourly=48, keep_daily=14, keep_weekly=8,
                             keep_monthly=24, keep_yearly=10)  # fmt: skip
    now = datetime(2027, 1, 1, tzinfo=UTC)
    seconds = statistics.median(
        timed(lambda: plan_retention(records, policy, now)) for _ in range(3)
    )
    print(f"retention planning, 100,000 records: {seconds:.2f} s (median of 3)")


def bench_discovery(work: Path) -> None:
    from datetime import UTC, datetime, timedelta

    from pobsync_models.models import Host
    from pobsync_models.specs import SnapshotName
    from pobsync_runner.discovery import discover
    from pobsync_runner.snapshots import SnapshotMeta, write_metadata

    root = work / "disc"
    host = Host.objects.create(name="many", address="127.0.0.1", sources=["/etc"])
    start = datetime(2024, 1, 1, tzinfo=UTC)
    previous = ""
    for i in range(1000):
        name = str(SnapshotName.for_time(start + timedelta(hours=i)))
        path = root / "many" / name / "etc"
        path.mkdir(parents=True)
        (path / "hosts").write_text("127.0.0.1 localhost\n")
        meta = SnapshotMeta(name=name, host="many", state="complete", started_at=start.isoformat(),
                            base_name=previous, files_total=1, sources=("/etc",))  # fmt: skip
        write_metadata(path.parent, meta)
        previous = name
    first = timed(lambda: discover([host], root))
    again = timed(lambda: discover([host], root))
    print(f"discovery, 1,000 snapshot dirs: {first:.2f} s first run, {again:.2f} s unchanged")


if __name__ == "__main__":
    sys.exit(main())
