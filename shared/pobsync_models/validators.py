"""Validators shared by the models, the admin, the CLI and the legacy YAML import.

Each raises django.core.exceptions.ValidationError with one sentence that says what is
wrong and what is allowed.
"""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Iterable
from datetime import UTC, datetime

from croniter import CroniterBadDateError, croniter
from django.core.exceptions import ValidationError

HOST_NAME_MAX = 64
CRON_HORIZON_YEARS = 5  # a cron with no time in this many years "never fires" (31 February)
# Patterns are used with fullmatch(), never match(): with match(), "$" also matches
# before a final newline, so "web1\n" passed as a host name (issue 10).
_HOST_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_ADDRESS_RE = re.compile(r"[A-Za-z0-9_.:\[\]%-]+")
_SSH_USER_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")

# Extra rsync options an operator may add per host. Anything else is rejected: the
# engine owns transport, deletion and destination options, and an allow-list is the
# only safe way to accept options that end up on a command line.
RSYNC_FLAG_OPTIONS = frozenset(
    {
        "--acls", "-A",
        "--xattrs", "-X",
        "--hard-links", "-H",
        "--sparse", "-S",
        "--one-file-system", "-x",
        "--compress", "-z",
        "--checksum", "-c",
        "--delete-excluded",
        "--fake-super",
        "--no-specials",
        "--no-devices",
        "--inplace",
    }
)  # fmt: skip
_SIZE = r"[0-9]+(\.[0-9]+)?[KMGTkmgt]?[iI]?[bB]?"
RSYNC_VALUE_OPTIONS: dict[str, re.Pattern[str]] = {
    "--bwlimit": re.compile(_SIZE),
    "--compress-level": re.compile(r"[0-9]"),
    "--max-size": re.compile(_SIZE),
    "--min-size": re.compile(_SIZE),
    "--chmod": re.compile(r"[ugoaDF,=+\-rwxXst0-7]+"),
    # The manifest records what rsync negotiated; these are the ones verify can compute.
    "--checksum-choice": re.compile(r"(auto|xxh128|md5)"),
}


EXCERPT_MAX = 60


def excerpt(value: object, limit: int = EXCERPT_MAX) -> str:
    """A value quoted for an error message: repr() (so newlines and control characters
    show as escapes, never as a second line) cut to `limit` characters. Messages quote
    what they reject, and what they reject may be long or come from a file it should
    not have (issue 10): never more than this."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 4] + "...'"


def validate_host_name(value: str) -> None:
    """A host name becomes one path component under the backup root."""
    if not value:
        raise ValidationError("host name is empty")
    if len(value) > HOST_NAME_MAX:
        raise ValidationError(f"host name is longer than {HOST_NAME_MAX} characters")
    if value in {".", ".."} or not _HOST_NAME_RE.fullmatch(value):
        raise ValidationError(
            f"host name {excerpt(value)} is not safe as a directory name: use letters, digits, "
            "'.', '_' and '-', starting with a letter or digit"
        )


def validate_address(value: str) -> None:
    if not value:
        raise ValidationError("address is empty")
    if value.startswith("-") or not _ADDRESS_RE.fullmatch(value):
        raise ValidationError(f"address {excerpt(value)} is not a host name or IP address")


def validate_ssh_user(value: str) -> None:
    if value and not _SSH_USER_RE.fullmatch(value):
        raise ValidationError(f"SSH user {excerpt(value)} is not a valid user name")


def validate_absolute_path(value: str) -> None:
    if not isinstance(value, str) or not value:
        raise ValidationError("path is empty")
    if not value.startswith("/"):
        raise ValidationError(f"path {excerpt(value)} is not absolute (it must start with /)")
    if "\x00" in value or "\n" in value:
        raise ValidationError(f"path {excerpt(value)} contains a NUL or newline character")


def validate_optional_absolute_path(value: str) -> None:
    if value:
        validate_absolute_path(value)


def validate_source_list(value: object) -> None:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValidationError("sources must be a list of absolute paths")
    for item in value:
        validate_absolute_path(item)
    if len(set(value)) != len(value):
        raise ValidationError("sources contain the same path twice")


def validate_exclude_list(value: object) -> None:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValidationError("excludes must be a list of rsync patterns")
    for item in value:
        if not item or "\x00" in item or "\n" in item:
            raise ValidationError(f"exclude pattern {excerpt(item)} is empty or has a newline")


def validate_rsync_option(option: str) -> None:
    if option in RSYNC_FLAG_OPTIONS:
        return
    name, sep, arg = option.partition("=")
    pattern = RSYNC_VALUE_OPTIONS.get(name)
    if pattern is not None and sep and pattern.fullmatch(arg):
        return
    allowed = ", ".join(sorted(RSYNC_FLAG_OPTIONS | {f"{k}=..." for k in RSYNC_VALUE_OPTIONS}))
    raise ValidationError(f"rsync option {excerpt(option)} is not allowed; allowed: {allowed}")


def validate_rsync_options(value: object) -> None:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValidationError("rsync options must be a list of strings")
    for item in value:
        validate_rsync_option(item)


def validate_exit_codes(value: object) -> None:
    if not isinstance(value, list) or not all(
        isinstance(item, int) and not isinstance(item, bool) for item in value
    ):
        raise ValidationError("exit codes must be a list of integers")
    for code in value:
        if not 1 <= code <= 255:
            raise ValidationError(f"exit code {code} is outside 1..255")


def validate_cron(value: str) -> None:
    if any(c in value for c in "\n\r\x00"):
        raise ValidationError(f"cron expression {excerpt(value)} contains a line break")
    fields = value.split()
    if len(fields) != 5:
        raise ValidationError(
            f"cron expression {excerpt(value)} must have exactly 5 fields "
            "(minute hour day-of-month month day-of-week)"
        )
    expression = " ".join(fields)
    if not croniter.is_valid(expression):
        raise ValidationError(f"cron expression {excerpt(value)} is not valid")
    start = datetime.now(UTC).replace(tzinfo=None)
    try:
        croniter(expression, start, max_years_between_matches=CRON_HORIZON_YEARS).get_next(datetime)
    except CroniterBadDateError:
        raise ValidationError(
            f"cron expression {excerpt(value)} never fires (no matching date within "
            f"{CRON_HORIZON_YEARS} years); check the day of month and the month"
        ) from None


def validate_timezone(value: str) -> None:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValidationError(
            f"time zone {excerpt(value)} is unknown (use e.g. UTC, Europe/Amsterdam)"
        ) from None


def first_error(error: ValidationError) -> str:
    """One line for a CLI: the first message of a (possibly nested) ValidationError."""
    if hasattr(error, "error_dict"):
        field, errors = next(iter(error.error_dict.items()))
        message = next(iter(ValidationError(errors).messages))
        return message if field == "__all__" else f"{field}: {message}"
    return next(iter(error.messages), "invalid value")


def all_errors(error: ValidationError) -> Iterable[str]:
    if hasattr(error, "error_dict"):
        for field, errors in error.error_dict.items():
            for message in ValidationError(errors).messages:
                yield message if field == "__all__" else f"{field}: {message}"
    else:
        yield from error.messages


# Hooks and dumps (docs/hooks.md). A command is an argv list, never a shell string.
HOOK_TIMEOUT_MAX = 24 * 3600
HOOK_ARGV_MAX = 64
_DUMP_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# rsync's --bwlimit with an explicit unit: K/M/G (1024-based, also KiB/MiB/GiB) or
# KB/MB/GB (1000-based). A bare number would silently mean KiB/s.
_BWLIMIT_RE = re.compile(r"[1-9][0-9]{0,8}(\.[0-9]{1,3})?(K|M|G|KiB|MiB|GiB|KB|MB|GB)")


def _validate_argv(value: object, what: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(a, str) for a in value):
        raise ValidationError(f"{what} must be a list of strings (an argv)")
    if not value or not value[0]:
        raise ValidationError(f"{what} is empty: give the command and its arguments")
    if len(value) > HOOK_ARGV_MAX:
        raise ValidationError(f"{what} has more than {HOOK_ARGV_MAX} arguments")
    for arg in value:
        if "\x00" in arg or "\n" in arg or "\r" in arg:
            raise ValidationError(f"{what} argument {arg!r} contains a NUL or newline character")
    return value


def validate_server_hook(value: object) -> None:
    """A command run on the backup server: an argv whose executable is an absolute path.

    None (inherit) and [] (no hook) are allowed.
    """
    if value is None or value == []:
        return
    argv = _validate_argv(value, "hook")
    if not argv[0].startswith("/"):
        raise ValidationError(
            f"hook executable {argv[0]!r} is not an absolute path (write e.g. /usr/bin/{argv[0]})"
        )


def validate_remote_command(value: object) -> None:
    """A command run on the remote through its own forced-command key; [] is none."""
    if value == []:
        return
    argv = _validate_argv(value, "remote command")
    if argv[0].startswith("-"):
        raise ValidationError(f"remote command {argv[0]!r} starts with '-'")


def validate_dumps(value: object) -> None:
    """{NAME: argv}: each dump's stdout lands in <snapshot>/_dumps/NAME."""
    if not isinstance(value, dict):
        raise ValidationError("dumps must be a mapping of NAME to a command argv")
    for name, argv in value.items():
        if not isinstance(name, str) or not _DUMP_NAME_RE.fullmatch(name):
            raise ValidationError(
                f"dump name {name!r} is not safe as a file name: use letters, digits, "
                "'.', '_' and '-' (at most 64), starting with a letter or digit"
            )
        validate_remote_command(argv)
        if not argv:
            raise ValidationError(f"dump {name} has an empty command")


def validate_hook_timeout(value: int | None) -> None:
    if value is not None and not 1 <= value <= HOOK_TIMEOUT_MAX:
        raise ValidationError(f"hook timeout {value} is outside 1..{HOOK_TIMEOUT_MAX} seconds")


def validate_bwlimit(value: str) -> None:
    """'' (no limit / inherit) or a rate with an explicit unit, e.g. 5M, 500K, 2.5MB."""
    if value and not _BWLIMIT_RE.fullmatch(value):
        raise ValidationError(
            f"bandwidth limit {value!r} needs a number and an explicit unit per second: "
            "K, M, G (1024-based, or KiB, MiB, GiB) or KB, MB, GB (1000-based), e.g. 5M"
        )


# -- alerts: channel names, event kinds, URLs --------------------------------------------

_CHANNEL_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def validate_channel_name(value: str) -> None:
    if not _CHANNEL_NAME_RE.fullmatch(value or ""):
        raise ValidationError(
            f"name {value!r}: use 1 to 64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )


def validate_event_kinds(value: object) -> None:
    from pobsync_models.models.events import Event  # models import this module

    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValidationError("events must be a list of event kinds")
    unknown = sorted(set(value) - set(Event.Kind.values))
    if unknown:
        raise ValidationError(
            f"unknown event kind {unknown[0]!r}: use {', '.join(Event.Kind.values)}"
        )


def validate_http_url(value: str) -> None:
    """An http(s) URL with a host and no whitespace or credentials in it."""
    from urllib.parse import urlsplit

    parts = urlsplit(value or "")
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or any(c.isspace() for c in value)
        or parts.username is not None
    ):
        raise ValidationError(
            f"URL {value!r}: use http:// or https:// with a host name, no spaces or user:pass@"
        )


def validate_optional_http_url(value: str) -> None:
    if value:
        validate_http_url(value)
