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
_HOST_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_ADDRESS_RE = re.compile(r"^[A-Za-z0-9_.:\[\]%-]+$")
_SSH_USER_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")

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
    "--bwlimit": re.compile(rf"^{_SIZE}$"),
    "--compress-level": re.compile(r"^[0-9]$"),
    "--max-size": re.compile(rf"^{_SIZE}$"),
    "--min-size": re.compile(rf"^{_SIZE}$"),
    "--chmod": re.compile(r"^[ugoaDF,=+\-rwxXst0-7]+$"),
    # The manifest records what rsync negotiated; these are the ones verify can compute.
    "--checksum-choice": re.compile(r"^(auto|xxh128|md5)$"),
}


def validate_host_name(value: str) -> None:
    """A host name becomes one path component under the backup root."""
    if not value:
        raise ValidationError("host name is empty")
    if len(value) > HOST_NAME_MAX:
        raise ValidationError(f"host name is longer than {HOST_NAME_MAX} characters")
    if value in {".", ".."} or not _HOST_NAME_RE.match(value):
        raise ValidationError(
            f"host name {value!r} is not safe as a directory name: use letters, digits, "
            "'.', '_' and '-', starting with a letter or digit"
        )


def validate_address(value: str) -> None:
    if not value:
        raise ValidationError("address is empty")
    if value.startswith("-") or not _ADDRESS_RE.match(value):
        raise ValidationError(f"address {value!r} is not a host name or IP address")


def validate_ssh_user(value: str) -> None:
    if value and not _SSH_USER_RE.match(value):
        raise ValidationError(f"SSH user {value!r} is not a valid user name")


def validate_absolute_path(value: str) -> None:
    if not isinstance(value, str) or not value:
        raise ValidationError("path is empty")
    if not value.startswith("/"):
        raise ValidationError(f"path {value!r} is not absolute (it must start with /)")
    if "\x00" in value or "\n" in value:
        raise ValidationError(f"path {value!r} contains a NUL or newline character")


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
            raise ValidationError(f"exclude pattern {item!r} is empty or has a newline")


def validate_rsync_option(option: str) -> None:
    if option in RSYNC_FLAG_OPTIONS:
        return
    name, sep, arg = option.partition("=")
    pattern = RSYNC_VALUE_OPTIONS.get(name)
    if pattern is not None and sep and pattern.match(arg):
        return
    allowed = ", ".join(sorted(RSYNC_FLAG_OPTIONS | {f"{k}=..." for k in RSYNC_VALUE_OPTIONS}))
    raise ValidationError(f"rsync option {option!r} is not allowed; allowed: {allowed}")


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
    fields = value.split()
    if len(fields) != 5:
        raise ValidationError(
            f"cron expression {value!r} must have exactly 5 fields "
            "(minute hour day-of-month month day-of-week)"
        )
    expression = " ".join(fields)
    if not croniter.is_valid(expression):
        raise ValidationError(f"cron expression {value!r} is not valid")
    start = datetime.now(UTC).replace(tzinfo=None)
    try:
        croniter(expression, start, max_years_between_matches=CRON_HORIZON_YEARS).get_next(datetime)
    except CroniterBadDateError:
        raise ValidationError(
            f"cron expression {value!r} never fires (no matching date within "
            f"{CRON_HORIZON_YEARS} years); check the day of month and the month"
        ) from None


def validate_timezone(value: str) -> None:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValidationError(
            f"time zone {value!r} is unknown (use e.g. UTC, Europe/Amsterdam)"
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
