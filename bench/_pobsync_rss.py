"""Run the `pobsync` CLI in a child of this small process, then write the child's own
peak RSS (KiB) to the fd named by POBSYNC_BENCH_RSS_FD.

Why a child: Linux keeps a process's peak RSS across exec, so a process started by a
large benchmark driver reports the driver's size as its own peak (bench/verify.py's
driver grows past 130 MB when it verifies ten snapshots in-process). This script is
small when it forks (Django is imported in the child only), and the child's peak from
wait4 is the CLI's own. rsync and ssh are the child's children and are not counted.
Used by bench/backup.py and bench/verify.py; not part of pobsync.
"""

from __future__ import annotations

import os
import sys

# bench/queue.py would shadow the standard library's `queue` (imported by Django).
sys.path[:] = [p for p in sys.path if p not in ("", os.path.dirname(os.path.abspath(__file__)))]

if __name__ == "__main__":
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            from pobsync_models.cli import main

            code = main(sys.argv[1:])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code or 0)
    _, status, usage = os.wait4(pid, 0)
    os.write(int(os.environ["POBSYNC_BENCH_RSS_FD"]), f"{usage.ru_maxrss}\n".encode())
    sys.exit(os.waitstatus_to_exitcode(status))
