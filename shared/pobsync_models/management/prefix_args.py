"""--prefix, shared by import-configs and export-configs."""

from __future__ import annotations

import argparse

DEFAULT_PREFIX = "/opt/pobsync"


def add_prefix_argument(parser: argparse.ArgumentParser, verb: str) -> None:
    parser.add_argument(
        "--prefix",
        default=DEFAULT_PREFIX,
        help=f"{verb} <prefix>/config/global.yaml and <prefix>/config/hosts/<host>.yaml "
        f"(default {DEFAULT_PREFIX})",
    )
