"""import_pobsync_configs: validation of every file first, one transaction, dry run,
idempotence, schedules, --prune-missing."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from pobsync_models.models import GlobalConfig, Host, Schedule
from tests.legacy.conftest import (
    GLOBAL_YAML,
    WEB1_YAML,
    config_picture,
    run_import,
    write_tree,
)
from tests.support.factories import make_config, make_host, make_job, make_schedule

pytestmark = pytest.mark.django_db


def test_it_creates_the_global_config_hosts_and_schedules(prefix: Path):
    write_tree(prefix, {"global.yaml": GLOBAL_YAML, "hosts/web1.yaml": WEB1_YAML})
    result = run_import(prefix)
    assert result.ok, result.err
    assert "global configuration: created" in result.out
    assert "host web1: created with 1 schedule" in result.out
    config = GlobalConfig.load()
    assert config.backup_root == "/srv/backups"
    assert config.ssh_user == "backup"
    assert (config.keep_daily, config.keep_weekly, config.keep_monthly) == (7, 4, None)
    host = Host.objects.get(name="web1")
    assert host.sources == ["/etc", "/srv/www"]
    assert host.excludes == ["*.tmp"]
    assert host.ssh_user == "" and host.ssh_port is None and host.keep_daily is None
    schedule = host.schedules.get()
    assert (schedule.cron, schedule.timezone, schedule.prune, schedule.enabled) == (
        "15 2 * * *",
        "UTC",
        True,
        True,
    )
    assert schedule.next_run_at is None  # the scheduler computes it on its next tick


def test_it_says_nothing_changed_on_a_second_import(prefix: Path):
    write_tree(prefix, {"global.yaml": GLOBAL_YAML, "hosts/web1.yaml": WEB1_YAML})
    assert run_import(prefix).ok
    before = config_picture()
    result = run_import(prefix)
    assert result.ok
    assert "nothing changed: the database already matches the files" in result.out
    assert config_picture() == before


def test_it_applies_exactly_the_edit_made_to_one_file(prefix: Path):
    write_tree(prefix, {"global.yaml": GLOBAL_YAML, "hosts/web1.yaml": WEB1_YAML})
    assert run_import(prefix).ok
    before = config_picture()
    write_tree(prefix, {"hosts/web1.yaml": WEB1_YAML.replace("/srv/www", "/srv/www2")})
    result = run_import(prefix)
    assert result.ok
    assert "host web1: updated\n  sources: [/etc, /srv/www] -> [/etc, /srv/www2]\n" in result.out
    assert "hosts: 0 created, 1 updated, 0 deleted, 0 unchanged" in result.out
    after = config_picture()
    before["hosts"]["web1"]["sources"] = ["/etc", "/srv/www2"]
    assert after == before


def test_a_dry_run_shows_the_changes_and_writes_nothing(prefix: Path):
    write_tree(prefix, {"global.yaml": GLOBAL_YAML, "hosts/web1.yaml": WEB1_YAML})
    result = run_import(prefix, "--dry-run")
    assert result.ok
    assert "global configuration: would be created" in result.out
    assert "host web1: would be created with 1 schedule" in result.out
    assert "dry run: nothing was written" in result.out
    assert GlobalConfig.load() is None
    assert not Host.objects.exists() and not Schedule.objects.exists()


def test_a_dry_run_of_an_update_leaves_the_database_alone(prefix: Path):
    write_tree(prefix, {"global.yaml": GLOBAL_YAML, "hosts/web1.yaml": WEB1_YAML})
    assert run_import(prefix).ok
    before = config_picture()
    write_tree(prefix, {"hosts/web1.yaml": WEB1_YAML + "port: 2222\n"})
    result = run_import(prefix, "--dry-run")
    assert "host web1: would be updated\n  port: (default) -> 2222" in result.out
    assert config_picture() == before


HALF_INVALID = {
    "global.yaml": GLOBAL_YAML,
    "hosts/good1.yaml": WEB1_YAML,
    "hosts/good2.yaml": WEB1_YAML.replace("127.0.0.1", "127.0.0.2"),
    "hosts/bad.yaml": WEB1_YAML.replace('"15 2 * * *"', '"61 2 * * *"'),
}


def test_a_half_invalid_directory_writes_nothing(prefix: Path):
    write_tree(prefix, HALF_INVALID)
    result = run_import(prefix)
    assert not result.ok
    assert "1 problem in 1 file; nothing was imported" in str(result.error)
    assert GlobalConfig.load() is None
    assert not Host.objects.exists()


def test_a_half_invalid_directory_leaves_existing_config_untouched(prefix: Path):
    make_config("/srv/old-root")
    make_host("good1", address="127.0.0.9")
    before = config_picture()
    write_tree(prefix, HALF_INVALID)
    assert not run_import(prefix).ok
    assert config_picture() == before


def _problems_for(prefix: Path, host_yaml: str, name: str = "web1") -> list[str]:
    write_tree(prefix, {"global.yaml": GLOBAL_YAML, f"hosts/{name}.yaml": host_yaml})
    result = run_import(prefix)
    assert not result.ok
    assert not Host.objects.exists()
    return result.problems


def _file(prefix: Path, name: str) -> str:
    return str(prefix / "config" / "hosts" / name)


def test_it_reports_an_unknown_key_with_a_suggestion(prefix: Path):
    problems = _problems_for(prefix, WEB1_YAML + "adress: 127.0.0.2\n")
    assert problems == [
        f"{_file(prefix, 'web1.yaml')}: adress: unknown key (did you mean 'address'?)"
    ]


def test_it_reports_a_wrong_type(prefix: Path):
    problems = _problems_for(prefix, WEB1_YAML + 'port: "22"\n')
    assert problems == [
        f"{_file(prefix, 'web1.yaml')}: port: expected a whole number or 'inherit', "
        "got the text '22'"
    ]


def test_it_reports_a_bad_cron_expression(prefix: Path):
    problems = _problems_for(prefix, WEB1_YAML.replace('"15 2 * * *"', '"15 2 * *"'))
    assert problems == [
        f"{_file(prefix, 'web1.yaml')}: schedule.cron: cron expression '15 2 * *' must have "
        "exactly 5 fields (minute hour day-of-month month day-of-week)"
    ]


def test_it_reports_a_cron_expression_that_never_fires(prefix: Path):
    problems = _problems_for(prefix, WEB1_YAML.replace('"15 2 * * *"', '"0 0 31 2 *"'))
    assert problems == [
        f"{_file(prefix, 'web1.yaml')}: schedule.cron: cron expression '0 0 31 2 *' never "
        "fires (no matching date within 5 years); check the day of month and the month"
    ]


def test_it_reports_an_unsafe_host_name(prefix: Path):
    problems = _problems_for(prefix, WEB1_YAML, name="-rf")
    assert problems == [
        f"{_file(prefix, '-rf.yaml')}: name: host name '-rf' is not safe as a directory "
        "name: use letters, digits, '.', '_' and '-', starting with a letter or digit"
    ]


def test_it_reports_a_duplicate_host(prefix: Path):
    write_tree(
        prefix,
        {"global.yaml": GLOBAL_YAML, "hosts/web1.yaml": WEB1_YAML, "hosts/web1.yml": WEB1_YAML},
    )
    result = run_import(prefix)
    assert result.problems == [
        f"{_file(prefix, 'web1.yml')}: name: host 'web1' is already defined in "
        f"{_file(prefix, 'web1.yaml')}; keep one"
    ]


def test_it_treats_names_differing_only_in_case_as_duplicates(prefix: Path):
    write_tree(
        prefix,
        {"global.yaml": GLOBAL_YAML, "hosts/Web1.yaml": WEB1_YAML, "hosts/web1.yaml": WEB1_YAML},
    )
    result = run_import(prefix)
    assert "name: host 'web1' is already defined in" in result.err


def test_it_reports_a_name_that_does_not_match_the_file_name(prefix: Path):
    problems = _problems_for(prefix, "name: web2\n" + WEB1_YAML)
    assert problems == [
        f"{_file(prefix, 'web1.yaml')}: name: 'web2' does not match the file name (a host's "
        "file must be named <name>.yaml; rename the file or fix the key)"
    ]


def test_it_reports_model_validation_in_yaml_terms(prefix: Path):
    problems = _problems_for(
        prefix,
        WEB1_YAML
        + "rsync_options: [--delete]\nretention: {daily: -1}\nkey: id_rsa\n"
        + "warning_exit_codes: [300]\n",
    )
    file = _file(prefix, "web1.yaml")
    assert f"{file}: rsync_options: rsync option '--delete' is not allowed" in "\n".join(problems)
    assert f"{file}: retention.daily: Ensure this value is greater than or equal to 0." in problems
    assert f"{file}: key: path 'id_rsa' is not absolute (it must start with /)" in problems
    assert f"{file}: warning_exit_codes: exit code 300 is outside 1..255" in problems


def test_it_reports_every_problem_of_every_file_at_once(prefix: Path):
    write_tree(
        prefix,
        {
            "global.yaml": "backup_root: relative/path\nssh: {port: 70000}\n",
            "hosts/a.yaml": "address: 127.0.0.1\nsources: [etc]\nenabled: maybe\n",
            "hosts/b.yaml": "sources: [/etc]\nschedules:\n  - cron: '* * * * *'\n"
            "    timezone: Mars/Base\n  - {prune: true}\n",
            "hosts/c.yaml": "address: [127.0.0.1\n",
            "hosts/d.yaml": "",
        },
    )
    result = run_import(prefix)
    config = prefix / "config"
    assert result.problems == [
        f"{config}/global.yaml: backup_root: path 'relative/path' is not absolute "
        "(it must start with /)",
        f"{config}/global.yaml: ssh.port: Ensure this value is less than or equal to 65535.",
        f"{config}/hosts/a.yaml: enabled: expected true or false, got the text 'maybe'",
        f"{config}/hosts/a.yaml: sources: path 'etc' is not absolute (it must start with /)",
        f"{config}/hosts/b.yaml: address: missing (the host name or IP address to connect to)",
        f"{config}/hosts/b.yaml: schedules[1].cron: missing (a 5-field cron expression, "
        "e.g. '15 2 * * *')",
        f"{config}/hosts/b.yaml: schedules[0].timezone: time zone 'Mars/Base' is unknown "
        "(use e.g. UTC, Europe/Amsterdam)",
        f"{config}/hosts/c.yaml: line 2, column 1: expected ',' or ']', but got '<stream end>'",
        f"{config}/hosts/d.yaml: the file is empty",
    ]
    assert "9 problems in 5 files; nothing was imported" in str(result.error)


def test_it_needs_the_config_directory_and_the_global_file(prefix: Path, tmp_path: Path):
    result = run_import(tmp_path / "nowhere")
    assert result.problems == [
        f"{tmp_path / 'nowhere' / 'config'}: no such directory (expected config/global.yaml "
        "and config/hosts/<host>.yaml under the prefix)"
    ]
    write_tree(prefix, {"hosts/web1.yaml": WEB1_YAML})
    result = run_import(prefix)
    assert result.problems == [
        f"{prefix / 'config' / 'global.yaml'}: missing (the global file with backup_root)"
    ]


def test_it_refuses_an_oversized_file_and_a_yaml_bomb(prefix: Path):
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{n}: &{n} [{', '.join([f'*{p}'] * 10)}]\n" for p, n in zip("abcde", "bcdef", strict=True)
    )
    write_tree(
        prefix,
        {
            "global.yaml": GLOBAL_YAML,
            "hosts/bomb.yaml": bomb,
            "hosts/huge.yaml": "address: 127.0.0.1\n" + "# x\n" * 300_000,
        },
    )
    result = run_import(prefix)
    assert result.problems == [
        f"{_file(prefix, 'bomb.yaml')}: the document expands to more than 100000 values "
        "through aliases (a YAML bomb?); refused",
        f"{_file(prefix, 'huge.yaml')}: file is 1200019 bytes, over the 1048576 byte limit; "
        "refused",
    ]
    assert not Host.objects.exists()


def test_it_keeps_unicode_in_paths_and_excludes(prefix: Path):
    host = "address: 127.0.0.1\nsources: [/srv/d\u00e5ta, /home/j\u00fcrgen/\u6587\u6863]\n"
    host += "excludes: ['*.\u00e9t\u00e9', '/home/*/Papierkorb \U0001f5d1/**']\n"
    write_tree(prefix, {"global.yaml": GLOBAL_YAML, "hosts/web1.yaml": host})
    assert run_import(prefix).ok
    web1 = Host.objects.get(name="web1")
    assert web1.sources == ["/srv/d\u00e5ta", "/home/j\u00fcrgen/\u6587\u6863"]
    assert web1.excludes == ["*.\u00e9t\u00e9", "/home/*/Papierkorb \U0001f5d1/**"]
    assert "nothing changed" in run_import(prefix).out


def test_it_ignores_hidden_files_and_lists_other_strays(prefix: Path):
    write_tree(
        prefix,
        {
            "global.yaml": GLOBAL_YAML,
            "hosts/web1.yaml": WEB1_YAML,
            "hosts/.web1.yaml.abc.tmp": "garbage: [",
            "hosts/README.txt": "notes",
        },
    )
    result = run_import(prefix)
    assert result.ok
    assert f"ignored {_file(prefix, 'README.txt')} (not a <host>.yaml file)" in result.out
    assert ".tmp" not in result.out


def test_a_file_without_a_key_means_the_default(prefix: Path):
    make_config("/srv/backups", ssh_user="backup", keep_daily=7, keep_weekly=4)
    make_host("web1", ssh_port=2222, excludes=["*.tmp"], keep_daily=3)
    write_tree(prefix, {"global.yaml": GLOBAL_YAML, "hosts/web1.yaml": WEB1_YAML})
    result = run_import(prefix)
    assert "  port: 2222 -> (default)" in result.out
    assert "  retention.daily: 3 -> (default)" in result.out
    host = Host.objects.get(name="web1")
    assert host.ssh_port is None and host.keep_daily is None


def test_a_global_file_without_retention_gets_the_default_rules(prefix: Path):
    write_tree(prefix, {"global.yaml": "backup_root: /srv/b\n"})
    assert run_import(prefix).ok
    config = GlobalConfig.load()
    assert (config.keep_daily, config.keep_weekly, config.keep_monthly) == (7, 4, 6)
    assert (config.ssh_user, config.ssh_port, config.rsync_timeout) == ("root", 22, 900)


class TestSchedules:
    def _import(self, prefix: Path, schedules: str):
        host = "address: 127.0.0.1\nsources: [/etc]\nschedules:\n" + schedules
        write_tree(prefix, {"global.yaml": GLOBAL_YAML, "hosts/web1.yaml": host})
        return run_import(prefix)

    def test_it_updates_an_edited_schedule_in_place_and_resets_next_run(self, prefix: Path):
        assert self._import(prefix, "  - cron: '15 2 * * *'\n").ok
        schedule = Schedule.objects.get()
        when = datetime(2030, 1, 1, 2, 15, tzinfo=UTC)
        Schedule.objects.filter(pk=schedule.pk).update(next_run_at=when, last_scheduled_for=when)
        result = self._import(prefix, "  - cron: '30 3 * * *'\n")
        assert "  schedules[0]: cron: 15 2 * * * -> 30 3 * * *" in result.out
        updated = Schedule.objects.get()
        assert updated.pk == schedule.pk
        assert updated.next_run_at is None
        assert updated.last_scheduled_for == when  # the scheduler's own bookkeeping stays

    def test_a_prune_change_keeps_the_computed_next_run(self, prefix: Path):
        assert self._import(prefix, "  - cron: '15 2 * * *'\n").ok
        when = datetime(2030, 1, 1, 2, 15, tzinfo=UTC)
        Schedule.objects.update(next_run_at=when)
        assert self._import(prefix, "  - {cron: '15 2 * * *', prune: true}\n").ok
        assert Schedule.objects.get().next_run_at == when

    def test_it_matches_schedules_by_cron_and_deletes_those_left_out(self, prefix: Path):
        two = "  - cron: '0 1 * * *'\n  - cron: '0 2 * * *'\n"
        assert self._import(prefix, two).ok
        keep = Schedule.objects.get(cron="0 2 * * *")
        result = self._import(prefix, "  - cron: '0 2 * * *'\n")
        assert "  schedule '0 1 * * *' (UTC): deleted" in result.out
        assert list(Schedule.objects.values_list("pk", flat=True)) == [keep.pk]

    def test_it_refuses_the_same_schedule_twice(self, prefix: Path):
        result = self._import(prefix, "  - cron: '0 2 * * *'\n  - cron: '0  2 * * *'\n")
        assert result.problems[0].endswith(
            "schedules[1]: the same cron and timezone as schedules[0]; merge the two"
        )

    def test_it_refuses_schedule_and_schedules_together(self, prefix: Path):
        host = WEB1_YAML + "schedules: []\n"
        write_tree(prefix, {"global.yaml": GLOBAL_YAML, "hosts/web1.yaml": host})
        assert (
            run_import(prefix)
            .problems[0]
            .endswith("schedule: use either 'schedule' (one) or 'schedules' (a list), not both")
        )


class TestPruneMissing:
    def test_it_keeps_hosts_without_a_file_by_default(self, prefix: Path):
        make_config("/srv/backups")
        make_host("old")
        write_tree(prefix, {"global.yaml": GLOBAL_YAML, "hosts/web1.yaml": WEB1_YAML})
        result = run_import(prefix)
        assert "kept (in the database but without a file; --prune-missing deletes them): old" in (
            result.out
        )
        assert Host.objects.filter(name="old").exists()

    def test_it_deletes_them_with_prune_missing(self, prefix: Path):
        make_config("/srv/backups")
        old = make_host("old")
        make_schedule(old)
        write_tree(prefix, {"global.yaml": GLOBAL_YAML, "hosts/web1.yaml": WEB1_YAML})
        dry = run_import(prefix, "--prune-missing", "--dry-run")
        assert "host old: would be deleted" in dry.out
        assert Host.objects.filter(name="old").exists()
        result = run_import(prefix, "--prune-missing")
        assert "host old: deleted with its schedules" in result.out
        assert list(Host.objects.values_list("name", flat=True)) == ["web1"]

    def test_it_refuses_to_delete_a_host_that_is_running(self, prefix: Path):
        make_config("/srv/backups")
        busy = make_host("busy")
        job = make_job(busy, state="running")
        Host.objects.filter(pk=busy.pk).update(running_job=job, lease_token="t")
        write_tree(prefix, {"global.yaml": GLOBAL_YAML, "hosts/web1.yaml": WEB1_YAML})
        result = run_import(prefix, "--prune-missing")
        assert result.problems == [
            f"--prune-missing: host busy: has no file but is running job {job.pk}; "
            "import again when it has finished"
        ]
        assert not Host.objects.filter(name="web1").exists()


def test_an_update_does_not_undo_a_runner_claim_made_meanwhile(prefix: Path):
    """Config updates write only their own columns, never the queue's host mutex."""
    from pobsync_models.legacy_yaml.plan import apply_plan, plan_import
    from pobsync_models.legacy_yaml.reader import read_config_files

    make_config("/srv/backups")
    host = make_host("web1")
    write_tree(prefix, {"global.yaml": GLOBAL_YAML, "hosts/web1.yaml": WEB1_YAML})
    plan = plan_import(read_config_files(prefix))
    job = make_job(host, state="running")
    Host.objects.filter(pk=host.pk).update(running_job=job, lease_token="claimed")
    apply_plan(plan)
    host.refresh_from_db()
    assert (host.running_job_id, host.lease_token) == (job.pk, "claimed")
    assert host.excludes == ["*.tmp"]


SECRET = "s3cr3t-token-do-not-print-0123456789abcdef"


def test_it_refuses_a_symlinked_file_without_echoing_its_target(prefix: Path, tmp_path: Path):
    """A hosts/x.yaml linked to a secret file printed the secret in its error message."""
    secret = tmp_path / "secret.txt"
    secret.write_text(f"password={SECRET}\n")
    write_tree(prefix, {"global.yaml": GLOBAL_YAML})
    (prefix / "config" / "hosts").mkdir()
    (prefix / "config" / "hosts" / "x.yaml").symlink_to(secret)
    result = run_import(prefix)
    assert not result.ok
    assert result.problems == [
        f"{_file(prefix, 'x.yaml')}: is a symbolic link; refused (copy the file itself)"
    ]
    assert SECRET not in result.out + result.err + str(result.error)
    assert not Host.objects.exists()


def test_it_refuses_a_symlinked_global_file(prefix: Path, tmp_path: Path):
    real = tmp_path / "global.yaml"
    real.write_text(GLOBAL_YAML)
    (prefix / "config").mkdir(parents=True)
    (prefix / "config" / "global.yaml").symlink_to(real)
    result = run_import(prefix)
    assert result.problems == [
        f"{prefix / 'config' / 'global.yaml'}: is a symbolic link; refused (copy the file "
        "itself into place)"
    ]
    assert GlobalConfig.load() is None


def test_it_quotes_no_file_content_beyond_a_short_excerpt(prefix: Path):
    long_key = "k" * 30 + SECRET
    write_tree(
        prefix,
        {
            "global.yaml": GLOBAL_YAML,
            "hosts/plain.yaml": f"password={SECRET}\n",
            "hosts/web1.yaml": f"address: 127.0.0.1\nport: {SECRET * 3}\n{long_key}: 1\n",
        },
    )
    result = run_import(prefix)
    assert not result.ok
    text = result.out + result.err
    # A non-configuration file is never quoted; a value or key at most as an excerpt.
    assert not [line for line in result.problems if "plain.yaml" in line and SECRET in line]
    assert SECRET * 2 not in text and long_key not in text
    assert f"{_file(prefix, 'plain.yaml')}: (top level): expected a mapping of keys, got text" in (
        result.problems
    )
    assert all(len(line.split(".yaml: ", 1)[1]) < 250 for line in result.problems), result.problems
