"""Re-reading snapshots against their manifests, each inode once. No database here.

The manifests of every snapshot in a run are merged by path (each is sorted), so the
entries for one path in all snapshots arrive together; rsync's --link-dest shares inodes
at the same path, so grouping a path's entries by their inode on disk reads every shared
inode exactly once and applies the verdict to every snapshot that holds it. A small
cache of recent inodes covers hard links at different paths (rsync -H). Memory is flat in
file count: one entry per snapshot, a directory descriptor per snapshot, the cache.

Snapshot content is hostile: every manifest path is checked (relative, no `..`) and read
through pobsync_runner.safe_read, which never follows a symlink planted in a snapshot.
"""

from __future__ import annotations

import errno
import os
import random
import stat
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pobsync_runner.listing_ahead import NOT_READY, ListingsAhead
from pobsync_runner.manifest import (
    DEFAULT_ALGORITHM,
    UNKNOWN,
    Entry,
    ManifestError,
    ManifestReader,
    ManifestWriter,
    display_path,
    existing_objects_frozen,
    open_manifest,
    walk_files,
)
from pobsync_runner.safe_read import DirCursor, Stopped, Throttle, hash_file

INODE_CACHE = 4096
MAX_FINDINGS = 1000  # kept for display; the counts are always exact

MISSING, CHANGED, UNREADABLE, MANIFEST = "missing", "changed", "unreadable", "manifest"


@dataclass(frozen=True)
class Target:
    name: str
    path: Path
    full: bool = True  # read every file; otherwise a sample


@dataclass
class Finding:
    kind: str  # missing | changed | unreadable | manifest
    path: str  # for display (escaped); "" for a manifest-wide problem
    detail: str
    snapshots: list[str]
    raw_path: bytes = b""
    inode: tuple[int, int] | None = None  # the damaged inode, when there is one

    def line(self) -> str:
        where = f" {self.path}" if self.path else ""
        return f"{self.kind.upper()}{where}: {self.detail} (in {', '.join(self.snapshots)})"


@dataclass
class SnapshotResult:
    name: str
    entries: int = 0
    read: int = 0
    read_all: bool = True
    problems: int = 0
    problem_paths: list[str] = field(default_factory=list)
    manifest_note: str = ""  # completed, rebuilt, or why not

    def damaged(self, path: str) -> None:
        self.problems += 1
        if len(self.problem_paths) < 50 and path not in self.problem_paths:
            self.problem_paths.append(path)


@dataclass
class Report:
    snapshots: dict[str, SnapshotResult]
    findings: list[Finding] = field(default_factory=list)
    problems: int = 0
    files_checked: int = 0
    files_read: int = 0
    bytes_read: int = 0
    seconds: float = 0.0

    def add(self, finding: Finding) -> None:
        self.problems += 1
        if len(self.findings) < MAX_FINDINGS:
            self.findings.append(finding)


class _Source:
    """One snapshot's entries: its manifest, or a walk when it has none yet."""

    def __init__(self, index: int, target: Target, report: Report) -> None:
        self.index, self.target = index, target
        self.result = report.snapshots[target.name]
        self.full = target.full
        self.reader: ManifestReader | None = None
        self.walked = False
        self.writer: ManifestWriter | None | bool = None  # False: cannot write one
        self.fills = 0
        self.note = ""
        self.completable = True  # a damaged manifest stays as evidence, never rewritten
        try:
            self.reader = open_manifest(target.path)
            self.algorithm = self.reader.algorithm
        except ManifestError as exc:
            self.algorithm = DEFAULT_ALGORITHM
            if str(exc) != "no manifest":
                self.completable = False
                report.add(Finding(MANIFEST, "", str(exc), [target.name]))
                report.snapshots[target.name].damaged("(manifest)")
            self.walked = True

    def entries(self) -> Iterator[Entry]:
        if self.reader is not None:
            return iter(self.reader)
        return (
            Entry(path, st.st_size, st.st_mtime_ns, st.st_ino, UNKNOWN)
            for path, st in walk_files(self.target.path)
        )


def verify(
    targets: list[Target],
    *,
    sample: float = 1.0,
    max_rate: int | None = None,
    stop: threading.Event | None = None,
    rng: random.Random | None = None,
    complete_manifests: bool = True,
) -> Report:
    """Verify `targets` (snapshots of one host); `sample` is the fraction of paths read in
    the targets that are not `full`. Manifests with unknown checksums (or none at all)
    are completed from what was read when every one of their files was read."""
    with existing_objects_frozen():
        return _verify(targets, sample, max_rate, stop, rng, complete_manifests)


def _verify(targets, sample, max_rate, stop, rng, complete_manifests) -> Report:
    rng = rng or random.Random()  # noqa: S311  (sampling, not security)
    report = Report({t.name: SnapshotResult(t.name) for t in targets})
    started = time.monotonic()
    throttle = Throttle(max_rate, stop)
    sources = [_Source(i, t, report) for i, t in enumerate(targets)]
    cursors: list[DirCursor | None] = []
    for source in sources:
        try:
            cursors.append(DirCursor(source.target.path))
        except OSError as exc:
            cursors.append(None)
            name = source.target.name
            report.add(Finding(MISSING, "", f"snapshot directory: {exc.strerror}", [name]))
            report.snapshots[name].damaged("(snapshot directory)")
    cache: OrderedDict[tuple[int, int, str], str] = OrderedDict()
    live = [(s, c) for s, c in zip(sources, cursors, strict=True) if c is not None]
    args = (sources, cursors, report, throttle, cache, sample, rng)
    try:
        if len(live) == 1 and live[0][0].reader is not None:
            # One snapshot with a manifest (`pobsync verify --snapshot`): no merge at all.
            source = live[0][0]
            for entry in source.reader:
                if not _agreed(entry.path, entry, live, report, throttle):
                    _group([(entry.path, source.index, entry)], *args)
        elif len(live) > 1 and _alike(live):
            _merged_lines(live, args)
        else:
            _merged(live, args)
        for source in sources:
            if source.reader is not None:
                result = report.snapshots[source.target.name]
                for problem in source.reader.problems:
                    report.add(Finding(MANIFEST, "", problem, [source.target.name]))
                    result.damaged("(manifest)")
                extra = source.reader.problem_count - len(source.reader.problems)
                if extra:
                    more = f"{extra} more bad lines"
                    report.add(Finding(MANIFEST, "", more, [source.target.name]))
        if complete_manifests:
            _finish_manifests(sources, report)
    finally:
        for source in sources:
            if source.reader is not None:
                source.reader.close()
            if isinstance(source.writer, ManifestWriter):
                source.writer.abort()
        for cursor in cursors:
            if cursor is not None:
                cursor.close()
    report.seconds = time.monotonic() - started
    return report


def _merged(live: list[tuple[_Source, DirCursor]], args) -> None:
    """The snapshots' entries grouped by path, in lockstep: snapshots made with
    --link-dest hold mostly the same paths, so each step takes the smallest path among
    the heads and every head that has it (in snapshot order)."""
    iterators = [source.entries() for source, _ in live]
    heads = [next(it, None) for it in iterators]
    while True:
        path = min((head.path for head in heads if head is not None), default=None)
        if path is None:
            return
        members, entries = [], []
        for k, head in enumerate(heads):
            if head is not None and head.path == path:
                members.append(live[k])
                entries.append(head)
                heads[k] = next(iterators[k], None)
        _path_step(path, members, entries, args)


def _path_step(path: bytes, members, entries: list[Entry], args) -> None:
    """One path of a merge: `members` ((source, cursor) pairs) hold it with `entries`.
    The same line in all of them is checked in one step (_agreed); otherwise, or when
    that fails, the general way (_group)."""
    entry = entries[0]
    if entries.count(entry) != len(entries) or not _agreed(path, entry, members, *args[2:4]):
        _group([(path, m[0].index, e) for m, e in zip(members, entries, strict=True)], *args)


def _alike(live: list[tuple[_Source, DirCursor]]) -> bool:
    """Whether every snapshot has a manifest with one algorithm (a whole host's
    verification, scheduled or `pobsync verify HOST`, of snapshots taken since
    manifests exist): then _merged_lines compares their lines."""
    algorithm = live[0][0].algorithm
    return all(s.reader is not None and s.algorithm == algorithm for s, _ in live)


def _merged_lines(live: list[tuple[_Source, DirCursor]], args) -> None:
    """_merged for snapshots that are _alike, by their manifests' lines as they are.

    Snapshots made with --link-dest share most files, and a shared file has the very
    same manifest line (checksum, size, mtime, inode, path) in each. So the readers'
    runs of lines are laid side by side, row by row: a row whose lines are all the same
    bytes (the usual row) is parsed once, by the first snapshot's reader (the others
    accept it: same bytes, same verdict, and the merge's order puts it after whatever
    they took before), and checked once for all (_Agreement). The first other row ends
    the window: each reader takes (parses) its own line and the merge by path goes on
    as in _merged until the readers are level again."""
    feeds = [_Feed(source.reader) for source, _ in live]
    agreement = _Agreement(live, args)
    try:
        while True:
            if all(f.taken is None for f in feeds) and all(f.ready() for f in feeds):
                _window(feeds, agreement)
                continue
            for f in feeds:
                while f.taken is None and f.ready():
                    f.taken = f.take(0)
                    f.pos += 1
            path = min((f.taken.path for f in feeds if f.taken is not None), default=None)
            if path is None:
                return
            members, entries = [], []
            for f, member in zip(feeds, live, strict=True):
                if f.taken is not None and f.taken.path == path:
                    members.append(member)
                    entries.append(f.taken)
                    f.taken = None
            _path_step(path, members, entries, args)
    finally:
        agreement.settle()


class _Feed:
    """One reader's runs of lines (ManifestReader.line_runs) and where _merged_lines is
    in them; `taken`: an entry parsed whose path the merge has not reached yet."""

    __slots__ = ("reader", "runs", "lines", "first", "pos", "taken")

    def __init__(self, reader: ManifestReader) -> None:
        self.reader = reader
        self.runs = reader.line_runs()
        self.lines: list[bytes] = []
        self.first = self.pos = 0
        self.taken: Entry | None = None

    def ready(self) -> bool:
        """Whether a line is there at `pos`, asking for the next run when this one is
        done (every line of it taken or accepted by then)."""
        while self.pos == len(self.lines):
            run = next(self.runs, None)
            if run is None:
                return False
            (self.first, self.lines), self.pos = run, 0
        return True

    def take(self, ahead: int) -> Entry | None:
        """The line `ahead` lines after `pos`, parsed and checked by the reader."""
        at = self.pos + ahead
        return self.reader.take(self.lines[at], self.first + at)


WINDOW_MIN, WINDOW_MAX = 16, 4096


def _window(feeds: list[_Feed], agreement: _Agreement) -> None:
    """The rows of lines that every feed has at hand, from each one's `pos`, up to the
    first row that is not one line in all (taken by each feed; the merge goes on). The
    window is twice the run the last one found (within WINDOW_MIN and WINDOW_MAX), so
    that slicing it costs about what its rows do."""
    lead, others = feeds[0], feeds[1:]
    n = len(feeds)
    size = min(agreement.window, *(len(f.lines) - f.pos for f in feeds))
    rows = zip(*[f.lines[f.pos : f.pos + size] for f in feeds], strict=True)
    done = run = unknown = 0
    last = b""
    for row in rows:
        line = row[0]
        if row.count(line) == n:
            entry = lead.take(done)
            if entry is not None:
                done += 1
                run += 1
                unknown += entry.checksum == UNKNOWN
                last = entry.path
                agreement.check(entry)
                continue
        # The others accept the run before this row; then they are level (each one's
        # last path is the lead's), so a line is good for every reader or for none.
        if run:
            for f in others:
                f.reader.accept(run, last, unknown)
            run = unknown = 0
        if row.count(line) == n:  # one bad line in every snapshot: each reports it
            for f in others:
                f.take(done)
            done += 1
            continue
        entries = _row_entries(row, feeds, done)
        done += 1
        first = entries[0]
        if first is not None and all(e is not None and e.path == first.path for e in entries):
            agreement.differ(entries)  # one path in all, other lines: a changed file
            continue
        for f, entry in zip(feeds, entries, strict=True):
            f.taken = entry
        break
    if run:
        for f in others:
            f.reader.accept(run, last, unknown)
    for f in feeds:
        f.pos += done
    agreement.window = max(WINDOW_MIN, min(2 * done, WINDOW_MAX))


def _row_entries(row: tuple[bytes, ...], feeds: list[_Feed], at: int) -> list[Entry | None]:
    """Each level reader's entry of its line in `row` (`at` lines after its `pos`), None
    for a bad line. A line that an earlier reader of the row has is not parsed again
    but accepted (or reported, when bad): the readers are level, their last paths the
    same, so one line has one verdict in all of them."""
    seen: dict[bytes, Entry | None] = {}
    entries: list[Entry | None] = []
    for line, f in zip(row, feeds, strict=True):
        if line not in seen:
            entry = seen[line] = f.take(at)
        else:
            entry = seen[line]
            if entry is None:
                f.take(at)  # reported in this snapshot's manifest too
            else:
                f.reader.accept(1, entry.path, entry.checksum == UNKNOWN)
        entries.append(entry)
    return entries


class _Agreement:
    """_window's check of a path that every snapshot holds with the same manifest line:
    one regular file at that path in all of them by their directories' listings (one
    inode: --link-dest shares it), read once and matching, as _agreed() checks it. The
    listings are compared once per directory (_differing_names), not per name. A path
    that fails goes the general way, _group, as does every path when a snapshot is
    sampled, and a path whose checksum is not known."""

    def __init__(self, live: list[tuple[_Source, DirCursor]], args) -> None:
        self.live, self.args = live, args
        self.sources = [source for source, _ in live]
        self.members = [source.index for source in self.sources]
        self.cursor = live[0][1]
        self.algorithm = self.sources[0].algorithm
        self.full = all(source.full for source in self.sources)
        # Sampling or a single snapshot compares no listings: no child then.
        self.ahead = (
            ListingsAhead(
                [cursor for _, cursor in live],
                [source.target.path for source in self.sources],
                _differing_names,
            )
            if self.full and len(self.sources) > 1
            else None
        )
        self.parent: bytes | None = None
        self.differing: set[bytes] | None = None  # of `parent`, by _differing_names
        self.held = 0  # paths that passed here, counted for every snapshot in settle()
        self.window = WINDOW_MIN  # _window's next size

    def check(self, entry: Entry) -> None:
        if not self._holds(entry):
            _group([(entry.path, i, entry) for i in self.members], *self.args)

    def _holds(self, entry: Entry) -> bool:
        if not self.full or entry.checksum == UNKNOWN:
            return False  # a sample to draw, or a checksum to fill in: _group
        parent, _, name = entry.path.rpartition(b"/")
        if parent != self.parent:
            self.parent = parent
            ahead = self.ahead.differing(parent) if self.ahead is not None else NOT_READY
            self.differing = _differing_names(parent, self.live) if ahead is NOT_READY else ahead
        if self.differing is None or name in self.differing:
            return False
        try:  # the first snapshot's listing (read once per directory) says the rest
            dir_fd, seen = self.cursor.listed(parent, name)
        except OSError:
            return False
        if seen is None or not seen[2]:
            return False
        report, throttle = self.args[2], self.args[3]
        if not _read_agrees(dir_fd, name, seen[:2], entry, self.algorithm, report, throttle):
            return False
        self.held += 1
        for source in self.sources:
            if source.writer is not None:
                _pass(source, entry, entry.checksum)
        return True

    def differ(self, entries: list[Entry]) -> None:
        """A path every snapshot holds, with other lines in some: the general way."""
        path = entries[0].path
        _group([(path, i, e) for i, e in zip(self.members, entries, strict=True)], *self.args)

    def settle(self) -> None:
        if self.ahead is not None:
            self.ahead.close()
        report = self.args[2]
        report.files_checked += self.held * len(self.sources)
        for source in self.sources:
            source.result.entries += self.held
            source.result.read += self.held


def _differing_names(parent: bytes, live: list[tuple[_Source, DirCursor]]) -> set[bytes] | None:
    """The names in directory `parent` that a snapshot lists with another inode than the
    first snapshot does, or lists and the first does not, or the reverse (set
    operations on the listings, no loop per name). None when a snapshot cannot list
    `parent`, or holds it on another device."""
    try:
        _, dev, first = live[0][1].inodes(parent)
        differing: set[str] = set()
        for _, cursor in live[1:]:
            _, other_dev, other = cursor.inodes(parent)
            if other_dev != dev:
                return None
            if other != first:
                differing.update(name for name, _ in other.items() - first.items())
                differing.update(first.keys() - other.keys())
    except OSError:
        return None
    return {os.fsencode(name) for name in differing}


def _read_agrees(dir_fd, name, identity, entry, algorithm, report, throttle) -> bool:
    """The file `name` in `dir_fd`, when it is the inode `identity` and a regular file,
    read once, its checksum and size those of `entry`; counted as read when they are."""
    try:
        digest, n, st = hash_file(dir_fd, name, identity, algorithm, throttle)
    except Stopped:
        raise
    except OSError:
        return False
    if digest != entry.checksum or st.st_size != entry.size:
        return False
    report.files_read += 1
    report.bytes_read += n
    return True


def _group(pending, sources, cursors, report, throttle, cache, sample, rng) -> None:
    path = pending[0][0]
    report.files_checked += len(pending)
    full = False
    for _, i, _ in pending:
        source = sources[i]
        source.result.entries += 1
        full = full or source.full
    sampled = sample >= 1 or rng.random() < sample
    if not full and not sampled:
        for _, i, entry in pending:
            sources[i].result.read_all = False
            _pass(sources[i], entry, None)
        return
    by_inode = _locate(path, pending, sources, cursors, report)
    for (dev, ino), members in by_inode.items():
        if not sampled and not any(sources[i].full for i, *_ in members):
            # Only sampled snapshots hold this inode and the sample left it out.
            for i, entry, _, _ in members:
                sources[i].result.read_all = False
                _pass(sources[i], entry, None)
            continue
        i0, _, dir_fd, st = members[0]
        digests: dict[str, str | OSError] = {}
        algorithms = {sources[i].algorithm for i, *_ in members}
        for algorithm in algorithms:
            key = (dev, ino, algorithm)
            if key in cache:
                cache.move_to_end(key)
                digests[algorithm] = cache[key]
                continue
            try:
                name = path.rpartition(b"/")[2]
                digest, n, _ = hash_file(dir_fd, name, key[:2], algorithm, throttle)
            except Stopped:
                raise
            except OSError as exc:
                digests[algorithm] = exc
                continue
            report.files_read += 1
            report.bytes_read += n
            digests[algorithm] = cache[key] = digest
            if len(cache) > INODE_CACHE:
                cache.popitem(last=False)
        bad: dict[tuple[str, str], list[str]] = {}
        for i, entry, _, _ in members:
            source = sources[i]
            digest = digests[source.algorithm]
            if isinstance(digest, OSError):
                problem = (UNREADABLE, digest.strerror or str(digest))
            elif entry.size != st.st_size:
                problem = (CHANGED, f"size {st.st_size}, manifest says {entry.size}")
            elif entry.checksum == UNKNOWN:
                _pass(source, entry, digest)
                continue
            elif digest != entry.checksum:
                problem = (CHANGED, f"content differs from the manifest ({source.algorithm})")
            else:
                if source.writer is not None:
                    _pass(source, entry, digest)
                continue
            _pass(source, entry, None)
            bad.setdefault(problem, []).append(source.target.name)
        for (kind, detail), names in bad.items():
            shown = display_path(path)
            report.add(Finding(kind, shown, detail, names, path, (dev, ino)))
            for name in names:
                report.snapshots[name].damaged(shown)


Located = dict[tuple[int, int], list[tuple[int, Entry, int, os.stat_result]]]


def _locate(path: bytes, pending, sources, cursors, report) -> Located:
    """The group's entries by the inode each snapshot holds at `path`; a missing or
    changed one becomes a finding here. Snapshots sharing inodes (the usual case) cost
    one directory listing per directory and one lstat per distinct inode, not an lstat
    per snapshot: the listing's d_ino groups them, and the lstat of one member checks
    the listing (a mismatch, as on a file system whose d_ino is not st_ino, falls back
    to an lstat per member)."""
    located: Located = {}
    listed: dict[tuple[int, int], list[tuple[int, Entry]]] = {}
    for _, i, entry in pending:
        sources[i].result.read += 1
        try:
            seen = cursors[i].identity(path)
        except OSError as exc:
            _unreachable(path, sources[i], entry, exc, report)
            continue
        if seen is None:
            _unreachable(path, sources[i], entry, OSError(errno.ENOENT, "missing"), report)
        elif not seen[2]:
            _not_regular(path, sources[i], entry, report)
        else:
            listed.setdefault((seen[0], seen[1]), []).append((i, entry))
    for key, members in listed.items():
        i0 = members[0][0]
        try:
            dir_fd, st = cursors[i0].lstat(path)
        except OSError:
            st = None
        if st is not None and (st.st_dev, st.st_ino) == key and stat.S_ISREG(st.st_mode):
            located.setdefault(key, []).extend((i, e, dir_fd, st) for i, e in members)
            continue
        for i, entry in members:  # the listing and the inode disagree: ask each one
            try:
                dir_fd, st = cursors[i].lstat(path)
            except OSError as exc:
                _unreachable(path, sources[i], entry, exc, report)
                continue
            if not stat.S_ISREG(st.st_mode):
                _not_regular(path, sources[i], entry, report)
                continue
            located.setdefault((st.st_dev, st.st_ino), []).append((i, entry, dir_fd, st))
    return located


def _unreachable(path: bytes, source: _Source, entry: Entry, exc: OSError, report) -> None:
    kind = MISSING if exc.errno in (errno.ENOENT, errno.ENOTDIR) else CHANGED
    if exc.errno == errno.ELOOP:
        detail = "a directory on its path was replaced by a symlink"
    elif kind == MISSING:
        detail = "no longer in the snapshot"
    else:
        kind, detail = UNREADABLE, exc.strerror or str(exc)
    shown = display_path(path)
    report.add(Finding(kind, shown, detail, [source.target.name]))
    source.result.damaged(shown)
    _pass(source, entry, None)


def _not_regular(path: bytes, source: _Source, entry: Entry, report) -> None:
    shown = display_path(path)
    report.add(Finding(CHANGED, shown, "no longer a regular file", [source.target.name]))
    source.result.damaged(shown)
    _pass(source, entry, None)


def _agreed(path: bytes, entry: Entry, members, report, throttle) -> bool:
    """The common case in a few syscalls: every snapshot of `members` ((source, cursor)
    pairs, all holding this very manifest line) read in full, its checksum known, and
    one regular file at `path` in all of them by their directories' listings (one inode:
    --link-dest shares it), read once and matching. The listings stand in for an lstat
    per snapshot (the fstat of the open file checks them). False (nothing counted)
    sends the path the general way, which reads again and names what is wrong."""
    if entry.checksum == UNKNOWN:
        return False
    algorithm = members[0][0].algorithm
    parent, _, name = path.rpartition(b"/")
    first = None
    try:
        for source, cursor in members:
            if not source.full or source.algorithm != algorithm:
                return False
            dir_fd, seen = cursor.listed(parent, name)
            if seen is None or not seen[2] or (first is not None and seen != first):
                return False
            first = seen
    except OSError:
        return False
    if not _read_agrees(dir_fd, name, first[:2], entry, algorithm, report, throttle):
        return False
    report.files_checked += len(members)
    for source, _ in members:
        result = source.result
        result.entries += 1
        result.read += 1
        if source.writer is not None:
            _pass(source, entry, entry.checksum)
    return True


def _pass(source: _Source, entry: Entry, digest: str | None) -> None:
    """Every entry of a snapshot passes here in order: fill-ins go to its new manifest."""
    if entry.checksum == UNKNOWN and digest is not None and source.completable:
        if source.writer is None:
            source.writer = _start_completion(source, entry.path)
        source.fills += 1
        entry = Entry(entry.path, entry.size, entry.mtime_ns, entry.inode, digest)
    if isinstance(source.writer, ManifestWriter):
        source.writer.write(entry)


def _start_completion(source: _Source, upto: bytes):
    """A writer for the completed manifest, already holding the entries before `upto`."""
    try:
        writer = ManifestWriter(source.target.path, source.algorithm)
    except OSError as exc:
        source.note = f"manifest not completed: {exc.strerror}"
        return False
    if source.reader is not None:
        again = open_manifest(source.target.path)
        try:
            for entry in again:
                if entry.path >= upto:
                    break
                writer.write(entry)
        finally:
            again.close()
    else:
        for path, st in walk_files(source.target.path):
            if path >= upto:
                break
            writer.write(Entry(path, st.st_size, st.st_mtime_ns, st.st_ino, UNKNOWN))
    return writer


def _finish_manifests(sources: list[_Source], report: Report) -> None:
    for source in sources:
        result = report.snapshots[source.target.name]
        writer = source.writer
        if writer is False:
            result.manifest_note = source.note
            source.writer = None
            continue
        if writer is None:
            continue
        damaged = source.reader is not None and (
            not source.reader.complete or source.reader.problem_count
        )
        if damaged or writer.count != result.entries:
            result.manifest_note = "manifest left as it was (damaged): not completed"
            continue  # aborted in verify()'s finally
        try:
            writer.commit()
        except OSError as exc:
            result.manifest_note = f"manifest not completed: {exc.strerror}"
            continue
        source.writer = None
        verb = "built" if source.walked else "completed"
        result.manifest_note = f"manifest {verb}: {source.fills} checksums added"


def snapshots_sharing(raw_path: bytes, inode: tuple[int, int], others: list[Target]) -> list[str]:
    """Which of `others` hold the very inode `inode` at `raw_path` (hard links made by
    --link-dest): the damage found in one snapshot is theirs too."""
    names = []
    for target in others:
        try:
            cursor = DirCursor(target.path)
        except OSError:
            continue
        try:
            _, st = cursor.lstat(raw_path)
        except OSError:
            continue
        finally:
            cursor.close()
        if (st.st_dev, st.st_ino) == inode:
            names.append(target.name)
    return names
