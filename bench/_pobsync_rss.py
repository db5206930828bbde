"""Run the `pobsync` CLI in this process, then write its own peak RSS (KiB) to the fd
named by POBSYNC_BENCH_RSS_FD.

RUSAGE_SELF counts this process only: rsync and ssh are children and are excluded.
Used by bench/backup.py; not part of pobsync.
"""

from __future__ import annotations

import os
import resource
import sys

# bench/queue.py would shadow the standard library's `queue` (imported by Django).
sys.path[:] = [p for p in sys.path if p not in ("", os.path.dirname(os.path.abspath(__file__)))]

from pobsync_models.cli import main  # noqa: E402

if __name__ == "__main__":
    code = main(sys.argv[1:])
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    os.write(int(os.environ["POBSYNC_BENCH_RSS_FD"]), f"{peak}\n".encode())
    sys.exit(code)
