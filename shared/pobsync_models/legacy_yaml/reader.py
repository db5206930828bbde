"""Read every file under <prefix>/config into parsed documents, collecting all problems.

No database access here: this is the part of the import that can fail on a machine
with no database at all, and it reports every problem of every file in one pass.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from django.core.exceptions import ValidationError

from pobsync_models.legacy_yaml.loader import LoadError, load_file
from pobsync_models.legacy_yaml.schema import (
    GlobalDoc,
    HostDoc,
    Problem,
    parse_global,
    parse_host,
)
from pobsync_models.validators import validate_host_name

SUFFIXES = (".yaml", ".yml")


def config_dir(prefix: Path) -> Path:
    return prefix / "config"


def global_path(prefix: Path) -> Path:
    return config_dir(prefix) / "global.yaml"


def hosts_dir(prefix: Path) -> Path:
    return config_dir(prefix) / "hosts"


def host_path(prefix: Path, name: str) -> Path:
    return hosts_dir(prefix) / f"{name}.yaml"


@dataclass
class ConfigFiles:
    """What the files say (documents that parsed) and everything wrong with them."""

    global_doc: GlobalDoc | None = None
    hosts: list[HostDoc] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    ignored: list[Path] = field(default_factory=list)


def _read_global(prefix: Path, result: ConfigFiles) -> None:
    candidates = [
        p for p in (config_dir(prefix) / f"global{s}" for s in SUFFIXES) if os.path.lexists(p)
    ]
    if not candidates:
        result.problems.append(
            Problem(str(global_path(prefix)), "", "missing (the global file with backup_root)")
        )
        return
    if len(candidates) > 1:
        result.problems.append(
            Problem(str(candidates[1]), "", f"duplicate of {candidates[0].name}; keep one")
        )
        return
    path = candidates[0]
    try:
        data = load_file(path)
    except LoadError as exc:
        result.problems.append(Problem(str(path), "", str(exc)))
        return
    doc, problems = parse_global(data, str(path))
    result.global_doc = doc
    result.problems += problems


def _read_hosts(prefix: Path, result: ConfigFiles) -> None:
    directory = hosts_dir(prefix)
    if not directory.is_dir():
        return
    seen: dict[str, Path] = {}  # casefolded name -> first file: MariaDB compares names
    for path in sorted(directory.iterdir()):
        # Hidden files include export's own temporary files and editor swap files.
        if path.name.startswith("."):
            continue
        if path.suffix in SUFFIXES and path.is_symlink():
            result.problems.append(
                Problem(str(path), "", "is a symbolic link; refused (copy the file itself)")
            )
            continue
        if path.suffix not in SUFFIXES or not path.is_file():
            result.ignored.append(path)
            continue
        name = path.stem
        file = str(path)
        try:
            validate_host_name(name)
        except ValidationError as exc:
            result.problems.append(Problem(file, "name", exc.messages[0]))
            continue
        first = seen.get(name.casefold())
        if first is not None:
            result.problems.append(
                Problem(file, "name", f"host {name!r} is already defined in {first}; keep one")
            )
            continue
        seen[name.casefold()] = path
        try:
            data = load_file(path)
        except LoadError as exc:
            result.problems.append(Problem(file, "", str(exc)))
            continue
        doc, problems = parse_host(data, file, name)
        if doc is not None:
            result.hosts.append(doc)
        result.problems += problems


def read_config_files(prefix: Path) -> ConfigFiles:
    """Parse <prefix>/config/global.yaml and <prefix>/config/hosts/*.yaml (or .yml)."""
    result = ConfigFiles()
    if not config_dir(prefix).is_dir():
        result.problems.append(
            Problem(
                str(config_dir(prefix)),
                "",
                "no such directory (expected config/global.yaml and config/hosts/<host>.yaml "
                "under the prefix)",
            )
        )
        return result
    _read_global(prefix, result)
    _read_hosts(prefix, result)
    return result
