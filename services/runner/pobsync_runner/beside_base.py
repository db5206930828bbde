"""Pulling each source beside its base, so rsync's --link-dest lookups stay short (issue 16).

rsync 3.5 resolves every --link-dest lookup with its ownership walk: an fstatat, openat
and close for each directory of `<base>/<name>`, starting at "/", twice per unchanged
file (the stat and the link). Under pobsync's layout a file of source /srv/app/data sits
at `<root>/<host>/<snapshot>/srv/app/data/...`, several directories deeper than in a
plain `rsync -a --link-dest=PREV host:/srv/app/data/ NEW/`, and the unchanged
incremental paid for each of them (x1.37 of the plain copy at depth 4). A relative
--link-dest does not help (rsync joins it to the destination's path first), and
`--insecure-links` would follow a symlink planted in an older snapshot.

So, when a run can (plan() says; otherwise the one `--relative` rsync of rsync.py runs):
- Each source /P/L (parent P, leaf L) gets its own rsync, into an *incoming* directory
  made inside the base snapshot's copy of P: `<base>/P/.pobsync-incoming-<32 hex>/`.
- That rsync runs in a private mount namespace in which `<base>/P` is bind-mounted at
  MOUNTPOINT: the destination is `MOUNTPOINT/<incoming>/`, `--link-dest=MOUNTPOINT`, and
  the names are `L/...` (`--relative` with the `/./` marker, `host:/P/./L`). A lookup
  walks MOUNTPOINT's two directories and the name's own, fewer than the plain copy's.
  The base and the destination are on the same mount, so rsync can hard-link.
- P's own directories (owner, mode, times) come from the same rsync: `host:/./P` with
  `--exclude=/P/*` sends the directories on P's path and nothing inside P.
- Afterwards (success, failure or stop alike) the incoming tree is moved into the staging
  directory, L under P, and the base's P gets its times back. The base is never changed
  otherwise: nothing of it is moved or written, and listings hide the incoming name.
- A journal beside the snapshots (`<host>/.pobsync-incoming.json`, written before the
  first incoming directory exists) lets the next holder of the host's lock finish the
  move after a crash (recover(), called by HostLock).

The base's path to P is opened one directory at a time with O_NOFOLLOW: a symlink that an
older backup stored there is never followed (such a run takes the `--relative` way).
"""

from __future__ import annotations

import contextlib
import ctypes
import fnmatch
import functools
import json
import logging
import os
import secrets
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pobsync_models.snapfs import INCOMING_PREFIX, is_incoming_name
from pobsync_models.specs import HostSpec
from pobsync_runner.linux import libc
from pobsync_runner.snapshots import PARTIAL_DIR, fsync_dir

log = logging.getLogger("pobsync.beside_base")

MOUNTPOINT = "/run/pobsync"  # two directories: fewer than any plain copy's destination
JOURNAL = ".pobsync-incoming.json"
_WILDCARDS = frozenset("*?[\\")
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_CLONE_NEWNS = 0x00020000
_MS_BIND = 0x1000
_MS_REC = 0x4000
_MS_PRIVATE = 0x40000


# -- the mount namespace ----------------------------------------------------------------


def enter_namespace(lib: ctypes.CDLL, source: str, expect_fd: int) -> None:
    """In a child before exec: a private mount namespace with the directory `source`
    bind-mounted at MOUNTPOINT, which must then be the directory `expect_fd` refers to
    (opened without following symlinks: should anything along `source` have been
    swapped for a symlink since, the bind is refused). A descriptor cannot be the bind's
    source itself: it belongs to the namespace left behind. OSError when refused."""
    if lib.unshare(_CLONE_NEWNS) != 0:
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNS)")
    # Private: the bind below must not propagate back into the machine's own namespace.
    if lib.mount(b"none", b"/", None, _MS_REC | _MS_PRIVATE, None) != 0:
        raise OSError(ctypes.get_errno(), "mount --make-rprivate /")
    if lib.mount(os.fsencode(source), MOUNTPOINT.encode(), None, _MS_BIND, None) != 0:
        raise OSError(ctypes.get_errno(), f"mount --bind {source} {MOUNTPOINT}")
    got, want = os.stat(MOUNTPOINT), os.fstat(expect_fd)
    if (got.st_dev, got.st_ino) != (want.st_dev, want.st_ino):
        raise OSError(f"{source} is not the directory opened before the bind")


@functools.cache
def available() -> bool:
    """Whether this process may make a private mount namespace (root, or CAP_SYS_ADMIN:
    not in a default container) and MOUNTPOINT exists; probed once in a forked child."""
    lib = libc()
    if lib is None:
        return False
    try:
        os.makedirs(MOUNTPOINT, mode=0o700, exist_ok=True)
        fd = os.open(MOUNTPOINT, _DIR_FLAGS)
    except OSError:
        return False
    try:
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child only reports by its exit code
            try:
                enter_namespace(lib, MOUNTPOINT, fd)
                os._exit(0)
            except BaseException:
                os._exit(1)
        _, status = os.waitpid(pid, 0)
        return os.waitstatus_to_exitcode(status) == 0
    except OSError:
        return False
    finally:
        os.close(fd)


# -- the plan ---------------------------------------------------------------------------


@dataclass
class SourcePull:
    parent: tuple[str, ...]  # P's components (() for a source like /etc)
    leaf: str  # L
    excludes: list[str]  # the host's exclude patterns, re-anchored at P
    incoming: str = ""  # the incoming directory's name, inside <base>/P
    base_fd: int = -1  # <base>/P, opened without following symlinks
    base_path: str = ""  # its path
    times: tuple[int, int] = (0, 0)  # <base>/P's atime and mtime (ns), given back after

    def prefix(self) -> bytes:
        """The path of this rsync's names (L/...) inside the snapshot."""
        return os.fsencode("".join(f"{p}/" for p in self.parent))

    def remote_args(self, prefix: str) -> list[str]:
        parent = "/" + "/".join(self.parent)
        args = [f"{prefix}{parent.rstrip('/')}/./{self.leaf}"]
        if self.parent:
            args.append(f"{prefix}/.{parent}")
        return args

    def parent_only_exclude(self) -> list[str]:
        """Nothing inside P from the `host:/./P` argument: only P's directories."""
        return [f"--exclude=/{'/'.join(self.parent)}/*"] if self.parent else []


def translate_excludes(patterns: list[str], parts: tuple[str, ...]) -> list[str] | None:
    """The host's exclude patterns for an rsync whose names start at the source's leaf
    (L/...) instead of the remote's root; None when one cannot be carried over exactly
    (the run then takes the `--relative` way, which needs no translation).

    Anchored patterns ("/srv/app/data/cache") that lie inside the source are re-anchored
    ("/data/cache"); those elsewhere do not concern this source and are left out; one
    that names the source or a directory above it, or has a wildcard along the source's
    path, is not carried over. Unanchored patterns stay as they are unless they contain
    an inner "/" or "**" (they match across directories) or could match a directory of
    the source's own path."""
    out: list[str] = []
    for pattern in patterns:
        slash = "/" if pattern.endswith("/") and len(pattern) > 1 else ""
        body = pattern[: len(pattern) - len(slash)]
        if "**" in body:
            return None
        if not body.startswith("/"):
            if "/" in body or any(_matches(part, body) for part in parts):
                return None
            out.append(pattern)
            continue
        comps = body[1:].split("/")
        if "" in comps:
            return None
        along = comps[: len(parts)]
        if any(_WILDCARDS & set(c) for c in along):
            return None
        if along != list(parts[: len(along)]):
            continue  # elsewhere on the host
        if len(comps) <= len(parts):
            return None  # the source itself or a directory above it
        out.append("/" + "/".join([parts[-1], *comps[len(parts) :]]) + slash)
    return out


def _matches(name: str, pattern: str) -> bool:
    return fnmatch.fnmatchcase(name, pattern.replace("[^", "[!"))


def plan(spec: HostSpec, base_dir: Path | None, *, seeded: bool) -> list[SourcePull] | None:
    """The per-source pulls for this run, or None when it must take the `--relative` way:
    no base, a seeded run (its --delete works on the whole tree), an earlier run's journal
    still there (recover() could not finish it), a source that is "/" or
    not in plain form, sources inside one another, an exclude that cannot be carried
    over, or no private mount namespace here. Opens nothing yet (open_bases does)."""
    if base_dir is None or seeded or not spec.sources:
        return None
    if (spec.host_dir / JOURNAL).exists():
        return None  # an earlier run's move recover() could not finish: never overwrite it
    pulls: list[SourcePull] = []
    for source in spec.sources:
        parts = tuple(source.split("/")[1:])
        if (
            source == "/"
            or os.path.normpath(source) != source
            or source.startswith("//")
            or any(_WILDCARDS & set(p) for p in parts)
            or any(p.startswith(".pobsync-") for p in parts)
            or (len(parts) > 1 and parts[-1] == parts[0])  # L would meet P's top in one dir
        ):
            return None
        excludes = translate_excludes(spec.excludes, parts)
        if excludes is None:
            return None
        pulls.append(SourcePull(parts[:-1], parts[-1], excludes))
    for a in spec.sources:
        if any(b != a and b.startswith(a + "/") for b in spec.sources):
            return None
    if not available():
        return None
    return pulls


def open_bases(base_dir: Path, pulls: list[SourcePull]) -> bool:
    """Open each source's P inside the base, one directory at a time without following a
    symlink, and read its times; False (all closed again) when one is missing or is not
    a plain directory on the base's filesystem."""
    try:
        root = os.open(base_dir, _DIR_FLAGS)
    except OSError:
        return False
    try:
        dev = os.fstat(root).st_dev
        for pull in pulls:
            fd = os.dup(root)
            try:
                for part in pull.parent:
                    child = os.open(part, _DIR_FLAGS, dir_fd=fd)
                    os.close(fd)
                    fd = child
                st = os.fstat(fd)
            except OSError:
                os.close(fd)
                close_bases(pulls)
                return False
            if st.st_dev != dev:
                os.close(fd)
                close_bases(pulls)
                return False
            pull.base_fd, pull.times = fd, (st.st_atime_ns, st.st_mtime_ns)
            pull.base_path = os.path.join(base_dir, *pull.parent)
        return True
    finally:
        os.close(root)


def close_bases(pulls: list[SourcePull]) -> None:
    for pull in pulls:
        if pull.base_fd >= 0:
            os.close(pull.base_fd)
            pull.base_fd = -1


# -- the journal, and moving an incoming tree into the staging directory -----------------


def start(host_dir: Path, staging: Path, base_dir: Path, pulls: list[SourcePull]) -> None:
    """Write the journal, then make each source's incoming directory inside the base."""
    for pull in pulls:
        pull.incoming = INCOMING_PREFIX + secrets.token_hex(16)
    entries = [
        {
            "parent": list(p.parent),
            "leaf": p.leaf,
            "incoming": p.incoming,
            "atime_ns": p.times[0],
            "mtime_ns": p.times[1],
        }
        for p in pulls
    ]
    journal = {"staging": staging.name, "base": base_dir.name, "pulls": entries}
    _write_journal(host_dir, journal)
    for pull in pulls:
        os.mkdir(pull.incoming, 0o700, dir_fd=pull.base_fd)


def _write_journal(host_dir: Path, journal: dict) -> None:
    tmp = host_dir / (JOURNAL + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(journal, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, host_dir / JOURNAL)
    fsync_dir(host_dir)


def settle(staging: Path, pull: SourcePull) -> None:
    """Move `pull`'s incoming tree into the staging directory (L under P, merged with the
    directories earlier sources brought), remove it from the base and give the base's P
    its times back. Safe to call again after a crash part-way (recover())."""
    _settle(pull.base_fd, pull.incoming, staging, pull.parent, pull.leaf, pull.times)


def _settle(
    base_fd: int,
    incoming: str,
    staging: Path,
    parent: tuple[str, ...],
    leaf: str,
    times: tuple[int, int],
) -> None:
    try:
        inc = os.open(incoming, _DIR_FLAGS, dir_fd=base_fd)
    except FileNotFoundError:
        inc = -1
    if inc >= 0:
        try:
            _place_leaf(inc, parent, leaf)
            dst = os.open(staging, _DIR_FLAGS)
            try:
                _merge(inc, dst)
            finally:
                os.close(dst)
        finally:
            os.close(inc)
        os.rmdir(incoming, dir_fd=base_fd)
    os.utime(base_fd, ns=times)


def _place_leaf(inc: int, parent: tuple[str, ...], leaf: str) -> None:
    """L arrives beside P's top directory; put it under P, keeping P's times."""
    if not parent or not _exists(inc, leaf):
        return
    fd = os.dup(inc)
    try:
        for part in parent:
            with contextlib.suppress(FileExistsError):
                os.mkdir(part, 0o700, dir_fd=fd)  # only when rsync stopped before P
            child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = child
        st = os.fstat(fd)
        os.rename(leaf, leaf, src_dir_fd=inc, dst_dir_fd=fd)
        os.utime(fd, ns=(st.st_atime_ns, st.st_mtime_ns))
    finally:
        os.close(fd)


def _merge(src: int, dst: int) -> None:
    """Move everything in `src` into `dst`. Directories both hold (P's, when sources share
    a parent) are merged and keep the times rsync gave the newer copy; the partial-file
    directory's entries join the staging directory's (one per run, as rsync.py keeps it)."""
    for name in os.listdir(src):
        if not _exists(dst, name):
            os.rename(name, name, src_dir_fd=src, dst_dir_fd=dst)
            continue
        s = os.open(name, _DIR_FLAGS, dir_fd=src)
        try:
            d = os.open(name, _DIR_FLAGS, dir_fd=dst)
        except OSError:
            os.close(s)
            log.warning("incoming %s cannot join the staging directory's entry", name)
            continue
        try:
            st = os.fstat(s)
            _merge(s, d)
            if name != PARTIAL_DIR:
                os.utime(d, ns=(st.st_atime_ns, st.st_mtime_ns))
        finally:
            os.close(s)
            os.close(d)
        os.rmdir(name, dir_fd=src)


def _exists(dir_fd: int, name: str) -> bool:
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


def finish(host_dir: Path) -> None:
    """Every pull settled: the journal goes."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(host_dir / JOURNAL)


def recover(host_dir: Path) -> None:
    """Finish what a run that died left (the caller holds the host's lock): move each
    incoming tree into its staging directory (kept as the partial it is recorded as), or
    delete it when that directory is gone, and give the base its times back."""
    try:
        with open(host_dir / JOURNAL, encoding="utf-8") as fh:
            journal = json.load(fh)
    except FileNotFoundError:
        return
    except (OSError, ValueError) as exc:
        log.warning("%s: unreadable journal (%s); left in place", host_dir, exc)
        return
    try:
        for entry in _entries(journal):
            _recover_one(host_dir, journal, entry)
    except (OSError, ValueError, TypeError, KeyError) as exc:
        log.warning("%s: could not finish an interrupted run's move (%s)", host_dir, exc)
        return
    finish(host_dir)


def _entries(journal: dict) -> Iterator[dict]:
    """The journal's entries, each name in it one plain name (never "..", never a path)."""
    names = [journal["staging"], journal["base"]]
    for entry in journal["pulls"]:
        if not is_incoming_name(entry["incoming"]):
            raise ValueError(f"not an incoming directory: {entry['incoming']!r}")
        names += [*entry["parent"], entry["leaf"]]
    for name in names:
        if not isinstance(name, str) or name in ("", ".", "..") or "/" in name:
            raise ValueError(f"not a plain name in the journal: {name!r}")
    yield from journal["pulls"]


def _recover_one(host_dir: Path, journal: dict, entry: dict) -> None:
    parent = tuple(str(p) for p in entry["parent"])
    base_dir = host_dir / str(journal["base"])
    try:
        fd = os.open(base_dir, _DIR_FLAGS)
    except FileNotFoundError:
        return  # the base is gone (deleted by hand), and its incoming directory with it
    try:
        for part in parent:
            try:
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                return
            os.close(fd)
            fd = child
        staging = host_dir / str(journal["staging"])
        times = (int(entry["atime_ns"]), int(entry["mtime_ns"]))
        if staging.is_dir():
            _settle(fd, entry["incoming"], staging, parent, str(entry["leaf"]), times)
        else:
            path = f"/proc/self/fd/{fd}/{entry['incoming']}"
            if os.path.isdir(path):
                shutil.rmtree(path)
            os.utime(fd, ns=times)
    finally:
        os.close(fd)
