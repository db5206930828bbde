"""docs/hooks.md as an operator runs it, through the real `pobsync` executable:
ssh-key --command, the printed line on the remote, configure-host --dump, backup."""

from __future__ import annotations

import pytest

from tests.engine.test_cli_journey import cli, trust  # noqa: F401  (cli is a fixture)

pytestmark = [pytest.mark.slow, pytest.mark.sshd]


def test_the_documented_dump_journey_works_as_written(cli):  # noqa: F811
    trust(cli)
    (cli.src / "a.txt").write_text("a\n")
    data = cli.src.parent / "app.txt"
    data.write_text("row 1\nrow 2\n")
    command = f"cat {data}"

    made = cli("ssh-key", "--command", command)
    line = made.stdout.strip()
    assert line.startswith(f'restrict,command="cat {data}" ssh-ed25519 ')
    assert "created " in made.stderr
    again = cli("ssh-key", "--command", command)
    assert again.stdout.strip() == line and "created" not in again.stderr  # reused
    cli.server.authorize(line)

    cli("configure-host", "web1", "--dump", f"app.txt={command}")
    shown = cli("show-host", "web1").stdout
    assert f"_dumps/app.txt <- {command}" in shown
    out = cli("backup", "web1").stdout
    assert "backup web1: success" in out, out
    [snapshot] = [p for p in (cli.root / "web1").iterdir() if p.name[0].isdigit()]
    assert (snapshot / "_dumps" / "app.txt").read_text() == "row 1\nrow 2\n"


def test_ssh_key_command_refuses_bad_input_with_one_line(cli):  # noqa: F811
    for args, expected in [
        (["ssh-key", "--command", ""], "command is empty"),
        (["ssh-key", "--command", "cat 'x"], "cannot be split"),
    ]:
        result = cli(*args, check=False)
        assert result.returncode != 0 and expected in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
