"""Benchmark: a database dump through pobsync against the same command over plain ssh.

    .venv/bin/python bench/hooks.py [--megabytes 200 --files 200 --runs 4]

Workload: a host with a small file tree (default 200 files of 4 KiB) and one dump of
M MB (default 200; a generated SQL-like text file the dump command `cat`s, standing in
for pg_dumpall or mariadb-dump), served by a loopback sshd (tests/support/sshd.py) with
the dump's forced-command key (`restrict,command="cat <file>"`).

Baseline, measured in the same run: what an operator would type by hand, the same ssh
argv with the same key piped to a file (`ssh ... > dump.sql`), plus plain rsync of the
tree for the whole-backup figure. Ours: run_backup() (rsync of the tree, then the dump
streamed into _dumps/ and compared with the previous snapshot's copy). Interleaved
(the order alternates each round), median of K runs, page cache flushed with sync
between steps. Reported: the dump step alone (pobsync's recorded dump seconds) and the
whole backup, each against its baseline, for a changed dump (new bytes) and for an
unchanged dump (compared, then hard-linked), and the bytes the unchanged backup added.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:] = [str(REPO)] + [p for p in sys.path if p not in ("", str(REPO / "bench"))]

from bench._site import configure_site, run_in_site, timed  # noqa: E402


def make_dump(path: Path, megabytes: int, salt: int) -> None:
    """SQL-looking lines, different for each salt (a changed database)."""
    line = 0
    target = megabytes * 1024 * 1024
    with open(path, "wb") as f:
        while f.tell() < target:
            rows = b"".join(
                b"INSERT INTO t VALUES (%d,'%d-%s');\n"
                % (line + i, salt, os.urandom(24).hex().encode())
                for i in range(2000)
            )
            f.write(rows)
            line += 2000
        f.truncate(target)


def new_bytes(snapshot: Path, earlier: list[Path]) -> int:
    """Bytes of files in `snapshot` that no earlier one holds, its own metadata files aside
    (.pobsync-snapshot.json and the manifest, new in every snapshot)."""
    seen = set()
    for old in earlier:
        for dirpath, _dirs, files in os.walk(old):
            for name in files:
                seen.add(os.lstat(os.path.join(dirpath, name)).st_ino)
    total = 0
    for dirpath, _dirs, files in os.walk(snapshot):
        for name in files:
            if dirpath == str(snapshot) and name.startswith(".pobsync-"):
                continue
            st = os.lstat(os.path.join(dirpath, name))
            if st.st_ino not in seen:
                total += st.st_size
    return total


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--megabytes", type=int, default=200)
    ap.add_argument("--files", type=int, default=200)
    ap.add_argument("--runs", type=int, default=4)
    ap.add_argument("--workdir", help="where to build the source and backups (default: tmp)")
    args = ap.parse_args()

    return run_in_site(
        "pobsync-bench-hooks-", args.workdir, lambda work, server: run(args, work, server)
    )


def run(args, work: Path, server) -> int:
    from pobsync_models.models import Host
    from pobsync_models.specs import command_keys_dir, host_spec
    from pobsync_runner.backup import run_backup
    from pobsync_runner.remotekeys import (
        authorized_line,
        ensure_command_key,
        remote_command_argv,
    )
    from pobsync_runner.rsync import rsync_argv

    src = work / "src"
    src.mkdir()
    for i in range(args.files):
        (src / f"f{i:05d}.txt").write_bytes(os.urandom(4096))
    dumps = [work / "dump-a.sql", work / "dump-b.sql"]
    for salt, path in enumerate(dumps):
        make_dump(path, args.megabytes, salt)
    live = work / "live.sql"  # what the dump command prints; swapped to "change" the db
    command = ["cat", str(live)]
    key, _ = ensure_command_key(command_keys_dir(), command)
    server.authorize(authorized_line(command, key.with_name(key.name + ".pub").read_text()))

    root = work / "backups"
    root.mkdir()
    config = configure_site(root, server)
    host = Host.objects.create(
        name="db1", address="127.0.0.1", sources=[str(src)], dumps={"db.sql": command}
    )
    spec = host_spec(host, config)
    ssh = remote_command_argv(spec, tuple(command))
    base_dir = work / "baseline"
    base_dir.mkdir()

    def baseline_dump() -> None:
        with open(base_dir / "dump.sql", "wb") as out:
            subprocess.run(ssh, stdout=out, stdin=subprocess.DEVNULL, check=True)

    def baseline_tree() -> None:
        dest = base_dir / "tree"
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir()
        subprocess.run(rsync_argv(spec, dest), check=True, stdout=subprocess.DEVNULL)

    def set_live(path: Path) -> None:
        live.unlink(missing_ok=True)
        os.link(path, live)

    print(
        f"workload: {args.files} files of 4 KiB + one {args.megabytes} MB dump, "
        f"{args.runs} runs, 2 cores shared, load average {os.getloadavg()[0]:.1f} at the start"
    )
    set_live(dumps[0])
    baseline_dump()  # page cache warm for everyone
    run_backup(host)
    keys = ("base_dump", "base_all", "pob_dump", "pob_all")
    changed: dict[str, list[float]] = {k: [] for k in keys}
    same: dict[str, list[float]] = {k: [] for k in keys}
    added: list[int] = []
    for k in range(args.runs):
        set_live(dumps[(k + 1) % 2])  # a changed database for the first backup of the round
        for figures in (changed, same):
            results = {}

            def ours(figures=figures, results=results) -> None:
                results["run"] = run_backup(host)

            def theirs(figures=figures) -> None:
                figures["base_dump"].append(timed(baseline_dump))
                figures["base_all"].append(figures["base_dump"][-1] + timed(baseline_tree))

            for step in (ours, theirs) if k % 2 == 0 else (theirs, ours):
                if step is ours:
                    figures["pob_all"].append(timed(ours))
                else:
                    step()
            backup = results["run"]
            if backup.outcome != "success":
                raise SystemExit(f"backup failed: {backup.message}")
            figures["pob_dump"].append(backup.dumps[0]["seconds"])
            if figures is same:
                if not backup.dumps[0]["linked"]:
                    raise SystemExit("the unchanged dump was not hard-linked")
                snaps = sorted(p for p in (root / "db1").iterdir() if p.name[0].isdigit())
                added.append(new_bytes(snaps[-1], snaps[:-1]))

    print()
    print(f"{'':<40}{'plain ssh > file':>17}{'pobsync':>10}{'ratio':>7}")
    for label, figures in (("changed dump", changed), ("unchanged dump (linked)", same)):
        med = {k: statistics.median(v) for k, v in figures.items()}
        print(
            f"{label + ', dump step':<40}{med['base_dump']:>16.2f}s{med['pob_dump']:>9.2f}s"
            f"{med['pob_dump'] / med['base_dump']:>7.2f}"
        )
        print(
            f"{label + ', whole backup':<40}{med['base_all']:>16.2f}s{med['pob_all']:>9.2f}s"
            f"{med['pob_all'] / med['base_all']:>7.2f}"
        )
    print()
    print(f"bytes added by the unchanged backups: {max(added)} (max of {len(added)})")
    print(f"load average {os.getloadavg()[0]:.1f} at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
