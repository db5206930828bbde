"""Benchmark: what each of pobsync's rsync options costs a full backup (issue 16).

    .venv/bin/python bench/rsync_options.py [--files N --rounds K --dest-dir DIR]

Workload: bench/backup.py's tree (default 20,000 files of 4 KiB) pulled in full from a
real sshd on 127.0.0.1 (tests/support/sshd.py) with pobsync's ssh options. Contenders,
interleaved (the order rotates and alternates each round), medians of --rounds, each
rsync run by hand with its output discarded (so the runner's own reading is not in it):

- plain: `rsync -a --numeric-ids host:SRC/ DEST/`, the operator's copy: the baseline
  (pobsync's ssh options for the key and known hosts, ssh's own cipher order);
- plain + ssh ciphers: the same with pobsync's cipher order (AES-GCM first where the CPU
  has AES instructions: pobsync_runner.ssh.cipher_options);
- then pobsync's options for a full backup added one group at a time, in the order
  rsync_argv() adds them (each line holds every group above it): --modify-window=-1,
  --relative, --timeout, --inplace (with the exclude of the partial directory), the
  metadata excludes, --no-human-readable --stats, the ssh ciphers, and last the
  transfer log (the %C checksum format on stdout with --out-format, and --debug=NSTR):
  all of pobsync's options for a full backup, which asks rsync for progress by signal
  (pobsync_runner.rsync.backup_progress_by_signal) and writes in place
  (pobsync_runner.rsync.receive_in_place);
- beside the last line, all of them with one thing as it was before 2026-12-01: with
  --info=progress2 (a line per file, as incrementals still ask), with the transfer log
  written by rsync to a --log-file (as incrementals still do), and with the partial
  directory instead of --inplace (as incrementals still do).

Each line prints its median and the median of each round's own ratio to plain (the
verdict: the disk drifts). --dest-dir puts the copies on another file system, e.g.
/dev/shm, so the disk's writeback does not blur options that cost a few percent (each
copy is deleted once timed); by default the copies go to the work directory, are timed
until their data is on disk and stay until the run ends (deleting them between rounds
stalled the next writes on this disk, as bench/backup.py found).
"""

from __future__ import annotations

import argparse
import itertools
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:] = [str(REPO)] + [p for p in sys.path if p not in ("", str(REPO / "bench"))]

from bench._site import configure_site, pair_ratio, run_in_site, timed  # noqa: E402
from bench.backup import generate  # noqa: E402


def groups(spec, dest: Path, log: Path) -> list[tuple[str, list[str]]]:
    """pobsync's options as pobsync_runner.rsync.rsync_argv() adds them, one group per
    line (its own pieces where it has them, so this follows the argv)."""
    from pobsync_runner.dumps import DUMPS_DIR
    from pobsync_runner.manifest import MANIFEST_FILE, MANIFEST_TMP
    from pobsync_runner.rsync import (
        backup_progress_by_signal,
        partial_dir_args,
        progress_args,
        transfer_log_args,
    )
    from pobsync_runner.snapshots import METADATA_FILE
    from pobsync_runner.ssh import rsync_rsh

    own = (METADATA_FILE, MANIFEST_FILE, MANIFEST_TMP, DUMPS_DIR)
    return [
        ("--modify-window=-1", ["--modify-window=-1"]),
        ("--relative", ["--relative"]),
        ("--timeout", [f"--timeout={spec.rsync_timeout}"]),
        ("--inplace", partial_dir_args(spec, dest, in_place=True)),
        ("metadata excludes", [f"--exclude=/{name}" for name in own]),
        ("--stats", progress_args(backup_progress_by_signal(None)) + ["--stats"]),
        ("ssh ciphers", ["--rsh", rsync_rsh(spec.ssh)]),  # rsync's last --rsh wins
        ("%C on stdout (all)", transfer_log_args(log, on_stdout=True)),
    ]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", type=int, default=20_000)
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--dest-dir", help="where the copies go (default: the work directory)")
    ap.add_argument("--workdir", help="where to build the site and source (default: a tmp dir)")
    args = ap.parse_args()
    return run_in_site("pobsync-bench-opts-", args.workdir, lambda w, s: run(args, w, s))


def run(args, work: Path, server) -> int:
    from pobsync_models.models import Host
    from pobsync_models.specs import host_spec
    from pobsync_runner.rsync import partial_dir_args, progress_args
    from pobsync_runner.ssh import remote_prefix, rsync_rsh
    from pobsync_runner.transfer_log import transfer_log_args

    (work / "backups").mkdir()
    config = configure_site(work / "backups", server)
    src = Path(f"/pobsync-bench-opts-{uuid.uuid4().hex[:8]}")
    if os.geteuid() != 0:
        src = work / "src"
    copies = Path(tempfile.mkdtemp(prefix="pobsync-opts-", dir=args.dest_dir or work))
    to_disk = args.dest_dir is None
    try:
        src.mkdir()
        generate(src, args.files)
        spec = host_spec(Host.objects.create(name="opts", address="127.0.0.1"), config)
        plain = ["rsync", "-a", "--numeric-ids", "--rsh", rsync_rsh(spec.ssh, ciphers=False)]
        source = f"{remote_prefix(spec.ssh)}{src}/"
        seq = itertools.count()

        def contender(extra) -> Callable[[], None]:
            def step() -> None:
                dest = copies / f"c{next(seq)}"
                log = copies / f"log{next(seq)}"
                argv = [*plain, *extra(dest, log), source, f"{dest}/"]
                subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)

            return step

        steps: dict[str, Callable[[], None]] = {"plain": contender(lambda d, log: [])}
        steps["plain + ssh ciphers"] = contender(lambda d, log: ["--rsh", rsync_rsh(spec.ssh)])
        names = [name for name, _ in groups(spec, Path("/"), Path("/"))]
        for i, name in enumerate(names):
            steps[f"+ {name}"] = contender(
                lambda d, log, i=i: [o for _, opts in groups(spec, d, log)[: i + 1] for o in opts]
            )

        def all_but(name: str, instead: Callable[[Path, Path], list[str]]):
            return contender(
                lambda d, log: [
                    o
                    for group, opts in groups(spec, d, log)
                    for o in (instead(d, log) if group == name else opts)
                ]
            )

        steps["all + --info=progress2"] = all_but("--stats", lambda d, log: [
            *progress_args(False), "--stats"])  # fmt: skip
        steps["all, %C to a --log-file"] = all_but(
            "%C on stdout (all)", lambda d, log: transfer_log_args(log)
        )
        steps["all, --partial-dir"] = all_but("--inplace", lambda d, log: partial_dir_args(spec, d))
        load = os.getloadavg()[0]
        print(
            f"workload: {args.files:,} files of 4 KiB, full copies over the loopback sshd into "
            f"{copies.parent} ({'timed to disk' if to_disk else 'no sync'}), {args.rounds} "
            f"rounds; load average {load:.2f} at the start"
        )
        times: dict[str, list[float]] = {k: [] for k in steps}
        order = list(steps)
        for k in range(args.rounds):
            turn = order[k % len(order) :] + order[: k % len(order)]
            for key in turn if k % 2 == 0 else reversed(turn):
                times[key].append(timed(steps[key], to_disk=to_disk))
                if not to_disk:  # memory, not this disk: deleting stalls nothing there
                    for copy in list(copies.iterdir()):
                        shutil.rmtree(copy) if copy.is_dir() else copy.unlink()
        base = times["plain"]
        print(f"\n{'options (cumulative)':<28}{'median':>9}{'ratio to plain':>16}")
        for key, values in times.items():
            ratio = pair_ratio(values, base)
            print(f"{key:<28}{statistics.median(values):>8.3f}s{ratio:>16.3f}")
    finally:
        shutil.rmtree(copies, ignore_errors=True)
        shutil.rmtree(src, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
