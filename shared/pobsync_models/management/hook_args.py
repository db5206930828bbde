"""Hook, dump and bandwidth options shared by configure-host and configure-global.

Commands are given as one string, 'CMD ARG...', split here like a shell would split it
(quotes and backslashes; no variables, globs or pipes) and stored as an argv list. A
shell runs only if the operator writes one (`sh -c '...'`). See docs/hooks.md.
"""

from __future__ import annotations

import argparse
import shlex
from typing import Any


def parse_command(text: str, what: str = "command") -> list[str]:
    """Split 'CMD ARG...' into an argv; ValueError with one line when it cannot."""
    try:
        argv = shlex.split(text)
    except ValueError as exc:
        raise ValueError(f"{what} {text!r} cannot be split: {exc}") from None
    if not argv:
        raise ValueError(f"{what} is empty: give the command and its arguments")
    return argv


def _argv(what: str):
    def parse(text: str) -> list[str]:
        try:
            return parse_command(text, what)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return parse


def _dump(text: str) -> tuple[str, list[str]]:
    name, sep, command = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"dump {text!r} must look like NAME='CMD ARG...'")
    return name, _argv(f"dump {name}")(command)


def _flag_pair(parser: argparse.ArgumentParser, dest: str, on: str, off: str, text: str) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument(on, dest=dest, action="store_true", default=None, help=text)
    group.add_argument(off, dest=dest, action="store_false", help=f"undo {on}")


WHEN = {"pre": "before rsync", "post": "after every started run"}


def add_hook_arguments(parser: argparse.ArgumentParser, *, host: bool) -> None:
    for phase in ("pre", "post"):
        group = parser.add_mutually_exclusive_group()
        group.add_argument(
            f"--{phase}",
            type=_argv(f"{phase} hook"),
            metavar="'CMD ARG...'",
            help=f"server-side command {WHEN[phase]} (absolute executable)",
        )
        group.add_argument(f"--no-{phase}", action="store_true", help=f"no {phase} hook")
    parser.add_argument(
        "--hook-timeout",
        type=int,
        metavar="SECONDS",
        help="seconds a hook or remote command may run before it is killed",
    )
    bw = parser.add_mutually_exclusive_group()
    bw.add_argument(
        "--bwlimit",
        metavar="RATE",
        help="rsync bandwidth limit with a unit per second, e.g. 5M, 500K, 2MB",
    )
    bw.add_argument(
        "--no-bwlimit",
        action="store_true",
        help="no limit" + (" (the global default applies)" if host else ""),
    )
    if not host:
        return
    parser.add_argument(
        "--inherit-hooks", action="store_true", help="use the global pre and post hooks again"
    )
    _flag_pair(
        parser,
        "pre_may_fail",
        "--pre-may-fail",
        "--pre-must-succeed",
        "a failing pre hook only warns (default: it fails the run)",
    )
    for phase in ("pre", "post"):
        group = parser.add_mutually_exclusive_group()
        group.add_argument(
            f"--remote-{phase}",
            type=_argv(f"remote {phase}"),
            metavar="'CMD ARG...'",
            help=f"command run on the remote {WHEN[phase]} "
            "through its own key (`pobsync ssh-key --command`)",
        )
        group.add_argument(
            f"--no-remote-{phase}", action="store_true", help=f"no remote {phase} command"
        )
    dumps = parser.add_mutually_exclusive_group()
    dumps.add_argument(
        "--dump",
        type=_dump,
        action="append",
        metavar="NAME='CMD ARG...'",
        help="remote command whose stdout is stored as _dumps/NAME; repeat "
        "for several (replaces the list)",
    )
    dumps.add_argument("--no-dumps", action="store_true", help="remove all dumps")
    _flag_pair(
        parser,
        "dump_compress",
        "--dump-compress",
        "--no-dump-compress",
        "gzip dumps on the backup server (_dumps/NAME.gz)",
    )
    _flag_pair(
        parser,
        "dumps_may_fail",
        "--dumps-may-fail",
        "--dumps-must-succeed",
        "a failing dump only warns (default: it fails the run)",
    )


def hook_values(opts: dict[str, Any], *, host: bool) -> dict[str, Any]:
    """Model field values for the hook options that were given."""
    values: dict[str, Any] = {}
    if opts.get("inherit_hooks"):
        values["pre_hook"] = values["post_hook"] = None
    if opts["pre"] is not None:
        values["pre_hook"] = opts["pre"]
    if opts["no_pre"]:
        values["pre_hook"] = []
    if opts["post"] is not None:
        values["post_hook"] = opts["post"]
    if opts["no_post"]:
        values["post_hook"] = []
    if opts["hook_timeout"] is not None:
        values["hook_timeout"] = opts["hook_timeout"]
    if opts["bwlimit"] is not None:
        values["bwlimit"] = opts["bwlimit"]
    if opts["no_bwlimit"]:
        values["bwlimit"] = ""
    if not host:
        return values
    for flag in ("pre_may_fail", "dump_compress", "dumps_may_fail"):
        if opts[flag] is not None:
            values[flag] = opts[flag]
    for phase in ("pre", "post"):
        if opts[f"remote_{phase}"] is not None:
            values[f"remote_{phase}"] = opts[f"remote_{phase}"]
        if opts[f"no_remote_{phase}"]:
            values[f"remote_{phase}"] = []
    if opts["no_dumps"]:
        values["dumps"] = {}
    if opts["dump"] is not None:
        dumps: dict[str, list[str]] = {}
        for name, argv in opts["dump"]:
            if name in dumps:
                raise ValueError(f"dump {name} is given twice")
            dumps[name] = argv
        values["dumps"] = dumps
    return values
