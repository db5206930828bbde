"""Benchmark: what a full backup's manifest costs, piece by piece (issues 13 and 16).

    .venv/bin/python bench/full_manifest.py [--files N --rounds K --depth D --workdir DIR]
                                            [--only NAME,...] [--megabytes M]

Workload: bench/backup.py's generated tree (default 100,000 files of 4 KiB) at depth D
of the remote's file system, served by a real sshd on 127.0.0.1, backed up in full into
--workdir (default /dev/shm: no disk in the way, so what is left is CPU, which is what
the manifest costs). With --megabytes, bench/verify.py's tree instead (sizes spread
over --files files, --megabytes in all), and each step is timed until its writes are on
disk, as bench/verify.py times its backups (run it with a --workdir on a disk). Contenders,
interleaved (the order alternates each round), each snapshot deleted after its round,
medians of --rounds:

- plain: `rsync -a --numeric-ids host:SRC/ DEST/` (bench/backup.py's baseline);
- plain+log: the same with the transfer log's line per file on rsync's stdout
  (`--out-format` with `%C`, `--debug=NSTR`, as a full backup asks for it), written
  straight to a file: what rsync itself pays for the checksums the manifest takes,
  with no reader at all (the floor of any manifest built from them);
- off: a full backup through the runner with the manifest switched off (no transfer
  log, no follower, no build: bench/verify.py's manifest_off);
- log: the same with rsync's transfer log on its stdout copied into the log file;
- follow: the same with the thread that follows that log too (LogFollower: a stat()
  per file, the lines spilled), but no manifest written from it;
- on: the backup as it runs (the manifest written before the commit).

Each line prints its median time, the median of each round's ratio to plain, and the
runner's own CPU per file (this process, all threads). The steps between off and on
are what each piece adds.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import shutil
import statistics
import sys
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:] = [str(REPO)] + [p for p in sys.path if p not in ("", str(REPO / "bench"))]

from bench._site import generate_tree, pair_ratio, run_in_site, timed  # noqa: E402
from bench.backup import Bench, generate  # noqa: E402
from bench.verify import manifest_off  # noqa: E402
from pobsync_runner.transfer_log import transfer_log_args  # noqa: E402

CONTENDERS = {
    "off": lambda: manifest_off(),
    "log": lambda: manifest_off(keep_log=True),
    "follow": lambda: manifest_off(keep_log=True, keep_follower=True),
    "on": contextlib.nullcontext,
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--depth", type=int, default=1)
    ap.add_argument("--workdir", default="/dev/shm")
    ap.add_argument(
        "--megabytes",
        type=int,
        help="bench/verify.py's tree instead: --files files of this many MB in all "
        "(sizes spread as there); each step is then timed until its writes are on disk",
    )
    ap.add_argument(
        "--only",
        help="comma-separated contenders to run (plain always runs): e.g. plain+log",
    )
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: the tree goes at the top of the file system")
    top = Path(f"/pobsync-bench-{uuid.uuid4().hex[:8]}")
    src = top.joinpath(*["sub"] * (args.depth - 1))

    def body(work: Path, server) -> int:
        b = Bench(args, work, server)
        src.mkdir(parents=True)
        if args.megabytes:
            generate_tree(src, args.files, args.megabytes)
        else:
            generate(src, args.files)
        to_disk = bool(args.megabytes)
        b.any_host = b.host("plain", src)
        names = ["plain", "plain+log", *CONTENDERS]
        if args.only:
            unknown = set(args.only.split(",")) - set(names)
            if unknown:
                raise SystemExit(f"--only: no such contender: {', '.join(sorted(unknown))}")
            names = ["plain", *[n for n in names[1:] if n in args.only.split(",")]]
        log_args = transfer_log_args(b.plain_root / "unused", on_stdout=True)
        times: dict[str, list[float]] = {name: [] for name in names}
        seq = iter(range(1_000_000))
        for k in range(args.rounds):
            for name in names if k % 2 == 0 else names[::-1]:
                if name.startswith("plain"):
                    dest = b.plain_root / f"p{next(seq)}"
                    log = b.plain_root / f"{dest.name}.log"
                    with open(log, "wb") as out:
                        extra = log_args if name == "plain+log" else ()
                        run = functools.partial(b.plain, src, dest, None, extra, out)
                        times[name].append(timed(run, to_disk=to_disk))
                    shutil.rmtree(dest)
                    log.unlink()
                    continue
                host = b.host(f"{name}-{next(seq)}", src)
                b.prepare_job(host)
                with CONTENDERS[name]():
                    job = functools.partial(b.runner_job, host, (name,))
                    times[name].append(timed(job, to_disk=to_disk))
                shutil.rmtree(b.root / host.name)
            print(f"  round {k + 1}/{args.rounds} done", flush=True)
        tree = f"{args.megabytes} MB in all," if args.megabytes else "4 KiB each,"
        print(
            f"\n{args.files:,} files ({tree} depth {args.depth}), full backups into "
            f"{args.workdir}, {args.rounds} interleaved rounds"
            + (", each timed until its writes are on disk" if to_disk else "")
        )
        print(f"  {'contender':10} {'median':>8} {'ratio to plain':>15} {'runner CPU':>12}")
        for name in names:
            ratio = pair_ratio(times[name], times["plain"])
            cpu = b.cpu_per_file.get((name,))
            cpu_text = f"{statistics.median(cpu):.1f} us/f" if cpu else ""
            median = statistics.median(times[name])
            print(f"  {name:10} {median:7.2f}s {ratio:14.3f}x {cpu_text:>12}")
        return 0

    try:
        return run_in_site("pobsync-bench-", args.workdir, body)
    finally:
        shutil.rmtree(top, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
