"""Server-side and remote hooks around real backups (real rsync, real sshd, real processes)."""

from __future__ import annotations

import threading
import time

import pytest

from pobsync_models.models import BackupRun, SnapshotRecord
from pobsync_runner import hooks
from pobsync_runner.backup import run_backup
from tests.engine.remote_commands import (
    authorize_command,
    env_file,
    keys_dir,  # noqa: F401  (a fixture)
    pid_gone,
    sh,
)
from tests.engine.slow_transfer import make_slow_source, staging_dirs, temp_file_started, wait_for
from tests.support.need import free_port

pytestmark = [pytest.mark.slow, pytest.mark.sshd, pytest.mark.usefixtures("keys_dir")]
Outcome = BackupRun.Outcome


def configure(engine, **fields) -> None:
    for name, value in fields.items():
        setattr(engine.host, name, value)
    engine.host.full_clean()
    engine.host.save()


def test_it_runs_pre_and_post_with_their_environment_and_logs_their_output(engine, tmp_path):
    (engine.src / "a.txt").write_text("a")
    pre_env, post_env = tmp_path / "pre.env", tmp_path / "post.env"
    configure(
        engine,
        pre_hook=sh(f"env > {pre_env}; echo pre says hello; echo to stderr >&2"),
        post_hook=sh(f"env > {post_env}; echo post says bye"),
    )

    run = run_backup(engine.host)

    assert run.outcome == Outcome.SUCCESS, run.message
    pre, post = env_file(pre_env), env_file(post_env)
    final = engine.host_dir / run.snapshot_name
    assert pre["POBSYNC_HOST"] == "web1" and pre["POBSYNC_ADDRESS"] == "127.0.0.1"
    assert pre["POBSYNC_SNAPSHOT"] == run.snapshot_name
    assert pre["POBSYNC_SNAPSHOT_PATH"] == f"{final}.partial"  # staging, before rsync
    assert "POBSYNC_OUTCOME" not in pre
    assert post["POBSYNC_SNAPSHOT_PATH"] == str(final)
    assert post["POBSYNC_OUTCOME"] == "success" and post["POBSYNC_EXIT_CODE"] == "0"
    run.refresh_from_db()
    assert "pre says hello" in run.hook_log and "to stderr" in run.hook_log
    assert "post says bye" in run.hook_log
    assert run.hook_log.index("--- pre:") < run.hook_log.index("--- post:")


def test_it_fails_before_rsync_with_the_pre_hooks_own_error_line(engine, tmp_path):
    (engine.src / "a.txt").write_text("a")
    post_env = tmp_path / "post.env"
    configure(
        engine,
        pre_hook=sh("echo checking; echo 'lvcreate: volume group vg0 not found' >&2; exit 3"),
        post_hook=sh(f"env > {post_env}"),
    )

    run = run_backup(engine.host)

    assert run.outcome == Outcome.FAILED
    assert run.message == (
        "pre hook exited with code 3: lvcreate: volume group vg0 not found; rsync not started"
    )
    assert run.rsync_exit_code is None  # rsync never ran
    assert SnapshotRecord.objects.get(name=run.snapshot_name).state == "partial"
    assert not (engine.host_dir / run.snapshot_name).exists()  # nothing committed
    assert env_file(post_env)["POBSYNC_OUTCOME"] == "failed"
    assert env_file(post_env)["POBSYNC_EXIT_CODE"] == ""
    run.refresh_from_db()
    assert "checking" in run.hook_log and "vg0 not found" in run.hook_log
    engine.host.refresh_from_db()
    assert engine.host.last_run_outcome == "failed"


def test_a_pre_hook_allowed_to_fail_only_warns(engine):
    (engine.src / "a.txt").write_text("a")
    configure(engine, pre_hook=sh("echo 'not today' >&2; exit 1"), pre_may_fail=True)

    run = run_backup(engine.host)

    assert run.outcome == Outcome.WARNING
    assert "pre hook exited with code 1: not today" in run.message
    assert (engine.host_dir / run.snapshot_name / engine.src.relative_to("/") / "a.txt").exists()


def test_a_missing_hook_fails_the_run_with_that_reason(engine):
    configure(engine, pre_hook=["/nonexistent/bin/freeze-db", "--now"])

    run = run_backup(engine.host)

    assert run.outcome == Outcome.FAILED
    assert run.message == (
        "pre hook cannot start /nonexistent/bin/freeze-db: No such file or directory; "
        "rsync not started"
    )


def test_a_hook_that_ignores_sigterm_is_killed_with_its_process_group(
    engine, tmp_path, monkeypatch
):
    monkeypatch.setattr(hooks, "KILL_GRACE_SECONDS", 1.0)
    pids = tmp_path / "pids"
    # The shell and its background child both ignore SIGTERM (SIG_IGN is inherited).
    script = f"trap '' TERM; /bin/sleep 300 & echo $$ $! > {pids}; echo hanging; wait; wait"
    configure(engine, pre_hook=sh(script), hook_timeout=1)

    started = time.monotonic()
    run = run_backup(engine.host)
    elapsed = time.monotonic() - started

    assert run.outcome == Outcome.FAILED
    assert run.message.startswith("pre hook timed out after 1s and was killed: hanging")
    assert elapsed < 10
    shell_pid, sleep_pid = (int(p) for p in pids.read_text().split())
    assert wait_for(lambda: pid_gone(shell_pid) and pid_gone(sleep_pid), timeout=5)
    run.refresh_from_db()
    assert "hanging" in run.hook_log


def test_hook_output_is_capped(engine):
    (engine.src / "a.txt").write_text("a")
    configure(engine, pre_hook=sh("head -c 3000000 /dev/zero | tr '\\0' x; echo; echo LAST"))

    run = run_backup(engine.host)

    assert run.outcome == Outcome.SUCCESS
    run.refresh_from_db()
    assert len(run.hook_log) < hooks.OUTPUT_CAP_BYTES + 500
    assert "bytes cut ...]" in run.hook_log and run.hook_log.rstrip().endswith("LAST")


def test_post_runs_after_a_failed_rsync(engine, tmp_path):
    post_env = tmp_path / "post.env"
    configure(engine, ssh_port=free_port(), post_hook=sh(f"env > {post_env}; echo cleanup"))

    run = run_backup(engine.host)

    assert run.outcome == Outcome.FAILED
    env = env_file(post_env)
    assert env["POBSYNC_OUTCOME"] == "failed"
    assert env["POBSYNC_EXIT_CODE"] in ("12", "255")
    assert env["POBSYNC_SNAPSHOT_PATH"] == str(engine.host_dir)  # nothing transferred: no partial
    run.refresh_from_db()
    assert "cleanup" in run.hook_log and run.outcome == Outcome.FAILED


def test_post_runs_after_a_cancelled_run(engine, tmp_path):
    make_slow_source(engine.src)
    post_env = tmp_path / "post.env"
    configure(engine, rsync_options=["--bwlimit=1000"], post_hook=sh(f"env > {post_env}"))
    stop = threading.Event()

    def cancel_when_sending() -> None:
        if wait_for(
            lambda: any(temp_file_started(d, "b-big.bin") for d in staging_dirs(engine.host_dir))
        ):
            stop.set()

    threading.Thread(target=cancel_when_sending, daemon=True).start()
    run = run_backup(engine.host, stop=stop)

    assert run.outcome == Outcome.CANCELLED
    assert env_file(post_env)["POBSYNC_OUTCOME"] == "cancelled"
    assert SnapshotRecord.objects.get(name=run.snapshot_name).state == "partial"


def test_a_failing_post_hook_turns_success_into_a_warning(engine):
    (engine.src / "a.txt").write_text("a")
    configure(engine, post_hook=sh("echo 'systemctl: unit web.service failed' >&2; exit 1"))

    run = run_backup(engine.host)

    assert run.outcome == Outcome.WARNING
    assert run.message == "post hook exited with code 1: systemctl: unit web.service failed"
    assert (engine.host_dir / run.snapshot_name).is_dir()  # the snapshot stays committed
    engine.host.refresh_from_db()
    assert engine.host.last_run_outcome == "warning"


def test_remote_pre_and_post_run_over_their_own_forced_command_keys(engine, sshd, tmp_path):
    (engine.src / "a.txt").write_text("a")
    marks = tmp_path / "remote-marks"
    pre = sh(f"echo pre >> {marks}; echo remote pre ran")
    post = sh(f"echo post >> {marks}")
    authorize_command(sshd, pre)
    authorize_command(sshd, post)
    configure(engine, remote_pre=pre, remote_post=post)

    run = run_backup(engine.host)

    assert run.outcome == Outcome.SUCCESS, run.message
    assert marks.read_text() == "pre\npost\n"
    run.refresh_from_db()
    assert "remote pre ran" in run.hook_log


def test_a_remote_pre_without_its_key_fails_the_run_saying_how_to_create_it(engine):
    configure(engine, remote_pre=["/usr/sbin/service", "app", "stop"])

    run = run_backup(engine.host)

    assert run.outcome == Outcome.FAILED
    assert "no key for remote command '/usr/sbin/service app stop'" in run.message
    assert "pobsync ssh-key --command" in run.message
