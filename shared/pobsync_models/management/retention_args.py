"""--keep-* options shared by configure-global, configure-host (and the YAML import)."""

from __future__ import annotations

import argparse
from typing import Any

from pobsync_models.specs import RETENTION_FIELDS


def _keep_count(inherit: bool):
    def parse(raw: str) -> int | None:
        if inherit and raw == "inherit":
            return None
        try:
            value = int(raw)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{raw!r} is not a count" + (" or 'inherit'" if inherit else "")
            ) from None
        if value < 0:
            raise argparse.ArgumentTypeError(f"keep count {value} is negative; use 0 or more")
        return value

    return parse


def add_keep_arguments(parser: argparse.ArgumentParser, *, inherit: bool) -> None:
    suffix = " ('inherit' to use the global default)" if inherit else ""
    for field in RETENTION_FIELDS:
        rule = field.removeprefix("keep_")
        parser.add_argument(
            f"--keep-{rule}",
            dest=field,
            type=_keep_count(inherit),
            default=argparse.SUPPRESS,
            metavar="N",
            help=f"keep the newest snapshot of each of the last N {rule} periods{suffix}"
            if rule != "last"
            else f"keep the N newest snapshots{suffix}",
        )


def keep_values(opts: dict[str, Any]) -> dict[str, Any]:
    return {field: opts[field] for field in RETENTION_FIELDS if field in opts}
