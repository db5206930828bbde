"""The Linux calls Python's os module lacks (prctl, unshare, mount), through the C
library, for the children the runner starts (rsync, hooks) and the mount namespace of a
pull beside its base (beside_base)."""

from __future__ import annotations

import ctypes
import functools
import os
import signal

PR_SET_PDEATHSIG = 1


@functools.cache
def libc() -> ctypes.CDLL | None:
    """The C library with errno kept, or None where it lacks these calls (not Linux).
    Resolve it in the parent: a forked child before exec should only call it."""
    try:
        lib = ctypes.CDLL(None, use_errno=True)
        lib.prctl  # noqa: B018
        lib.unshare  # noqa: B018
        lib.mount  # noqa: B018
        return lib
    except (OSError, AttributeError):
        return None


def die_with_parent(lib: ctypes.CDLL | None, parent_pid: int) -> None:
    """In a forked child before exec: SIGTERM when the parent dies (not KILL, so rsync
    still removes its temporary file), and exit now if it already has (before prctl
    took effect)."""
    if lib is not None:
        lib.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent_pid:
        os._exit(1)
