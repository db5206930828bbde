"""Pulling each source beside its base (pobsync_runner.beside_base) over the real sshd:
the snapshot is exactly the one the single `--relative` rsync makes, the base is left as
it was, and a run killed part-way is finished by the next holder of the host's lock."""

from __future__ import annotations

import os
import signal
import stat
import time
from pathlib import Path

import pytest

from pobsync_models.models import BackupRun
from pobsync_runner import beside_base, pull
from pobsync_runner.backup import run_backup
from pobsync_runner.manifest import MANIFEST_FILE
from pobsync_runner.verify import VerifyRequest, run_verify
from tests.engine.slow_transfer import rsync_pids, wait_for
from tests.engine.test_cli_journey import cli, trust  # noqa: F401  (the cli fixture)

pytestmark = [pytest.mark.slow, pytest.mark.sshd]

needs_namespace = pytest.mark.skipif(
    not beside_base.available() and os.environ.get("CI") != "true",
    reason="LOUD: no private mount namespace here (not root?): the beside-base pull cannot run",
)


def only_beside(monkeypatch) -> None:
    """The single --relative rsync may not run: only the beside-base pull can pass."""

    def refuse(*args, **kwargs):
        raise AssertionError("the --relative rsync ran instead of the beside-base pull")

    monkeypatch.setattr(pull, "_relative", refuse)


def only_relative(monkeypatch) -> None:
    monkeypatch.setattr(beside_base, "plan", lambda *a, **k: None)


def tree_state(top: Path, *, own_root: bool = False) -> dict[str, tuple]:
    """Every entry under `top` (and `top` itself unless it is pobsync's own snapshot
    directory, `own_root`): type, mode, owner, mtime, content."""
    state = {}
    for dirpath, dirs, files in os.walk(top):
        for name in ["", *dirs, *files]:
            path = Path(dirpath) / name
            if name == "" and Path(dirpath) != top:
                continue
            st = path.lstat()
            rel = str(path.relative_to(top))
            if rel.startswith(".pobsync-") or (own_root and rel == "."):
                continue
            content = (
                os.readlink(path)
                if stat.S_ISLNK(st.st_mode)
                else path.read_bytes()
                if stat.S_ISREG(st.st_mode)
                else b""
            )
            mtime = None if stat.S_ISLNK(st.st_mode) else st.st_mtime_ns
            kind, mode = stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode)
            state[rel] = (kind, mode, st.st_uid, mtime, content)
    return state


def parents_of(engine) -> list[Path]:
    return [p for p in engine.src.parents if p != Path("/")]


def build(engine) -> None:
    src = engine.src
    (src / "sub" / "deeper").mkdir(parents=True)
    (src / "unchanged.txt").write_text("same\n")
    (src / "changed.txt").write_text("v1\n")
    (src / "gone.txt").write_text("bye\n")
    (src / "sub" / "deeper" / "f.bin").write_bytes(os.urandom(3000))
    (src / "link").symlink_to("sub/deeper/f.bin")
    (src / "with space.txt").write_text("s")
    os.chown(src / "unchanged.txt", 1234, 2345)
    os.chmod(engine.src.parent, 0o700)
    os.utime(engine.src.parent, ns=(1_600_000_000_123_456_789, 1_600_000_000_123_456_789))


@needs_namespace
def test_the_snapshot_equals_the_relative_rsyncs_and_the_base_is_untouched(engine, monkeypatch):
    build(engine)
    first = run_backup(engine.host)  # no base: the --relative rsync
    assert first.outcome == BackupRun.Outcome.SUCCESS, first.message
    base = engine.host_dir / first.snapshot_name
    base_before = tree_state(base)
    (engine.src / "changed.txt").write_text("v2 longer\n")
    (engine.src / "gone.txt").unlink()
    (engine.src / "new.txt").write_text("new\n")
    os.chmod(engine.src.parent, 0o500)  # a parent's mode and times changed on the host
    os.utime(engine.src.parent, ns=(1_700_000_000_987_654_321, 1_700_000_000_987_654_321))

    only_beside(monkeypatch)
    second = run_backup(engine.host)
    assert second.outcome == BackupRun.Outcome.SUCCESS, second.message
    monkeypatch.undo()
    only_relative(monkeypatch)
    third = run_backup(engine.host)  # the same source, the way it was always pulled
    assert third.outcome == BackupRun.Outcome.SUCCESS, third.message

    beside, relative = engine.host_dir / second.snapshot_name, engine.host_dir / third.snapshot_name
    assert tree_state(beside, own_root=True) == tree_state(relative, own_root=True)
    landed = str(engine.src).lstrip("/")
    for parent in parents_of(engine):  # each parent directory as it is on the host
        st, got = parent.stat(), (beside / str(parent).lstrip("/")).stat()
        assert (got.st_mode, got.st_uid, got.st_mtime_ns) == (st.st_mode, st.st_uid, st.st_mtime_ns)
    assert (beside / landed / "unchanged.txt").stat().st_ino == (
        base / landed / "unchanged.txt"
    ).stat().st_ino  # linked into the base
    assert (beside / landed / "changed.txt").read_text() == "v2 longer\n"
    assert (second.files_total, second.files_transferred) == (third.files_total, 2)
    # The base is as it was: nothing left inside it, its directories' times given back.
    assert tree_state(base) == base_before
    assert not list(base.rglob(beside_base.INCOMING_PREFIX + "*"))
    assert not (engine.host_dir / beside_base.JOURNAL).exists()
    run, report = run_verify(engine.host, VerifyRequest(snapshot=second.snapshot_name))
    assert report is not None and report.problems == 0, run.message


@needs_namespace
def test_an_unchanged_run_copies_its_bases_manifest(engine, monkeypatch):
    build(engine)
    first = run_backup(engine.host)
    only_beside(monkeypatch)
    monkeypatch.setattr(
        "pobsync_runner.manifest_build.build_manifest",
        lambda *a, **k: (_ for _ in ()).throw(AssertionError("walked instead of copied")),
    )
    second = run_backup(engine.host)
    assert second.outcome == BackupRun.Outcome.SUCCESS, second.message
    base, new = (engine.host_dir / n for n in (first.snapshot_name, second.snapshot_name))
    assert (new / MANIFEST_FILE).read_bytes() == (base / MANIFEST_FILE).read_bytes()
    assert second.files_transferred == 0


@needs_namespace
def test_sources_sharing_a_parent_and_excludes_anchored_inside_them(engine, monkeypatch):
    other = engine.src.parent / "other"
    (other / "cache").mkdir(parents=True)
    (other / "cache" / "big").write_text("cached")
    (other / "keep.txt").write_text("k")
    (engine.src / "cache").mkdir()
    (engine.src / "cache" / "kept").write_text("not excluded: the pattern is other's")
    (engine.src / "x.tmp").write_text("t")
    engine.host.sources = [str(engine.src), str(other)]
    engine.host.excludes = ["*.tmp", f"{other}/cache", "/elsewhere/entirely"]
    engine.host.save()
    first = run_backup(engine.host)
    (other / "keep.txt").write_text("k2")

    only_beside(monkeypatch)
    second = run_backup(engine.host)

    assert second.outcome == BackupRun.Outcome.SUCCESS, second.message
    snap = engine.host_dir / second.snapshot_name
    mine, theirs = snap / str(engine.src).lstrip("/"), snap / str(other).lstrip("/")
    assert (theirs / "keep.txt").read_text() == "k2"
    assert not (theirs / "cache").exists()
    assert (mine / "cache" / "kept").exists()
    assert not (mine / "x.tmp").exists()
    monkeypatch.undo()
    only_relative(monkeypatch)
    third = run_backup(engine.host)
    relative = engine.host_dir / third.snapshot_name
    assert tree_state(snap, own_root=True) == tree_state(relative, own_root=True)
    assert first.outcome == BackupRun.Outcome.SUCCESS


def test_runs_it_cannot_carry_over_take_the_relative_way(engine):
    from pobsync_models.specs import host_spec

    def planned(**changes) -> bool:
        for key, value in changes.items():
            setattr(engine.host, key, value)
        engine.host.save()
        return beside_base.plan(host_spec(engine.host, engine.config), engine.root, seeded=False)

    src = str(engine.src)
    assert beside_base.translate_excludes(["/a/b/c/x", "*.o", "/z"], ("a", "b", "c")) == [
        "/c/x",
        "*.o",
    ]
    assert beside_base.translate_excludes(["/a/*/c/x"], ("a", "b", "c")) is None
    assert beside_base.translate_excludes(["/a/b"], ("a", "b", "c")) is None  # above it
    assert beside_base.translate_excludes(["b"], ("a", "b", "c")) is None  # its own parent
    assert beside_base.translate_excludes(["x/y"], ("a", "b")) is None
    assert beside_base.translate_excludes(["/a/b/**"], ("a", "b")) is None
    if beside_base.available():
        assert planned(sources=[src], excludes=[]) is not None
        engine.host_dir.mkdir(exist_ok=True)
        (engine.host_dir / beside_base.JOURNAL).write_text("{}")  # recover() gave up on it
        assert planned(sources=[src], excludes=[]) is None
        (engine.host_dir / beside_base.JOURNAL).unlink()
    assert planned(sources=["/"]) is None
    assert planned(sources=[src, src + "/inner"]) is None
    assert planned(sources=[src], excludes=[str(engine.src.parent)]) is None
    assert planned(sources=[src + "/"], excludes=[]) is None
    from pobsync_models.specs import host_spec as spec_of

    spec = spec_of(engine.host, engine.config)
    assert beside_base.plan(spec, None, seeded=False) is None
    assert beside_base.plan(spec, engine.root, seeded=True) is None


@needs_namespace
def test_a_run_killed_while_pulling_is_finished_by_the_next_lock_holder(cli_killable):
    c, base, incoming_parent = cli_killable
    before = tree_state(base)
    journal = c.root / "web1" / beside_base.JOURNAL
    proc = c.popen("backup", "web1")
    assert wait_for(
        lambda: any(
            any(f.startswith(".big") for f in files) for _d, _s, files in os.walk(incoming_parent)
        ),
        timeout=60,
    ), "rsync never started writing the big file"
    assert journal.exists()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert wait_for(lambda: not pids_of_rsync(c.root), timeout=30)
    assert list(incoming_parent.glob(beside_base.INCOMING_PREFIX + "*"))  # the crash's trace

    c("backup", "web1")  # takes the lock: finishes the move, then backs up

    assert not journal.exists()
    assert not list(incoming_parent.glob(beside_base.INCOMING_PREFIX + "*"))
    assert tree_state(base) == before
    newest = sorted(p for p in (c.root / "web1").iterdir() if p.name[:1].isdigit())[-1]
    landed = newest / str(c.src).lstrip("/")
    assert (landed / "big").read_bytes() == (c.src / "big").read_bytes()
    assert (landed / "small.txt").read_text() == "s"


def pids_of_rsync(root: Path) -> list[int]:
    return rsync_pids(beside_base.MOUNTPOINT) + rsync_pids(str(root))


@pytest.fixture
def cli_killable(cli):  # noqa: F811  (the fixture imported above)
    """A host with one complete snapshot, then a big new file pulled at 2 MB/s."""
    trust(cli)
    (cli.src / "small.txt").write_text("s")
    cli("backup", "web1")
    base = sorted(p for p in (cli.root / "web1").iterdir() if p.name[:1].isdigit())[-1]
    (cli.src / "big").write_bytes(os.urandom(20 << 20))
    cli("configure-host", "web1", "--rsync-option=--bwlimit=2M")
    incoming_parent = base / str(cli.src.parent).lstrip("/")
    time.sleep(0.01)
    return cli, base, incoming_parent


def test_listings_and_the_space_scan_never_show_a_running_backups_incoming_directory(tmp_path):
    from pobsync_models import snapfs
    from pobsync_runner.spacescan import _listing

    snap = tmp_path / "snap"
    incoming = beside_base.INCOMING_PREFIX + "ab" * 16
    (snap / "srv" / incoming / "data").mkdir(parents=True)
    (snap / "srv" / "data").mkdir()
    (snap / "srv" / ".pobsync-incoming-notours").mkdir()  # not the exact form: content
    with snapfs.open_dir(snap, ("srv",)) as fd:
        names = [name for _is_dir, name in snapfs.sorted_names(fd, at_root=False)]
    assert names == [".pobsync-incoming-notours", "data"]
    assert [n for n, _ino, _d in _listing(str(snap / "srv"))] != []
    assert incoming not in [n for n, _ino, _d in _listing(str(snap / "srv"))]
    with pytest.raises(snapfs.SnapshotPathError, match="running backup"):
        snapfs.parse_path(f"/srv/{incoming}/data")


@needs_namespace
def test_a_namespace_refused_at_run_time_takes_the_relative_way_at_once(engine, monkeypatch):
    build(engine)
    first = run_backup(engine.host)
    base = engine.host_dir / first.snapshot_name
    before = tree_state(base)

    def refused(*_a):
        raise OSError(1, "unshare(CLONE_NEWNS)")

    monkeypatch.setattr("pobsync_runner.rsync.enter_namespace", refused)
    second = run_backup(engine.host)

    assert second.outcome == BackupRun.Outcome.SUCCESS, second.message
    assert tree_state(engine.host_dir / second.snapshot_name, own_root=True) == tree_state(
        base, own_root=True
    )
    assert tree_state(base) == before
    assert not (engine.host_dir / beside_base.JOURNAL).exists()


@pytest.mark.parametrize(
    "journal",
    [
        '{"staging": "s.partial", "base": "b", "pulls": [{"parent": [".."], "leaf": "x",'
        ' "incoming": ".pobsync-incoming-' + "0" * 32 + '", "atime_ns": 1, "mtime_ns": 1}]}',
        '{"staging": "../../etc", "base": "b", "pulls": []}',
        '{"staging": "s", "base": "b", "pulls": [{"incoming": "/etc"}]}',
        "not json",
        '{"pulls": 5}',
    ],
)
def test_a_damaged_journal_is_left_alone_without_a_traceback(tmp_path, journal, caplog):
    host_dir = tmp_path / "web1"
    (host_dir / "b" / "x").mkdir(parents=True)
    (host_dir / beside_base.JOURNAL).write_text(journal)
    beside_base.recover(host_dir)  # never raises
    assert (host_dir / beside_base.JOURNAL).read_text() == journal  # left for a human
    assert (host_dir / "b" / "x").is_dir()
    assert "journal" in caplog.text or "interrupted" in caplog.text
