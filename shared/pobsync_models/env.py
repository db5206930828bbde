"""Typed readers for environment variables that fail loudly on bad values.

The environment is the only configuration source (docs/configuration.md lists every
variable). Each reader raises ImproperlyConfigured with the variable's name, so a typo
in a container's env file stops the process at start-up, not at 2 a.m.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off", ""})


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    word = raw.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ImproperlyConfigured(
        f"{name}={raw!r} is not a boolean: use one of 1/true/yes/on or 0/false/no/off"
    )


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not an integer") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name}={value} must be at least {minimum}")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return list(default)
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_secret(name: str) -> str | None:
    """Read NAME, or the contents of the file named by NAME_FILE (Docker secrets)."""
    value = os.environ.get(name)
    file_name = os.environ.get(f"{name}_FILE")
    if value and file_name:
        raise ImproperlyConfigured(f"set {name} or {name}_FILE, not both")
    if file_name:
        try:
            return Path(file_name).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE={file_name}: {exc.strerror}") from None
    return value or None


_CIPHER_LIST = re.compile(r"[a-z0-9][a-z0-9@.-]*(?:,[a-z0-9][a-z0-9@.-]*)*")


def env_ciphers(name: str) -> str:
    """ "auto" (the default), "ssh", or a comma-separated list of ssh cipher names."""
    raw = os.environ.get(name, "")
    value = raw.strip() or "auto"
    if value in ("auto", "ssh") or _CIPHER_LIST.fullmatch(value):
        return value
    raise ImproperlyConfigured(
        f"{name}={raw!r} is not auto, ssh or a comma-separated list of ssh cipher names"
    )
