"""Render the SQL configuration as legacy YAML files and write them safely.

Invariants:
- rendering is deterministic: the same database gives byte-identical files (fixed key
  order, schedules by id, no timestamps in the header);
- every file carries a header saying it is an export the service does not read, and
  a checksum of its own text, so a later export can tell an untouched export (safe to
  replace) from a file someone edited (refused without force);
- nothing is written unless every file may be written; each file is replaced
  atomically (temporary file in the same directory, fsync, rename).
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from django.core.exceptions import ValidationError

from pobsync_models.legacy_yaml.reader import SUFFIXES, global_path, host_path, hosts_dir
from pobsync_models.legacy_yaml.schema import RULES
from pobsync_models.models import GlobalConfig, Host
from pobsync_models.validators import validate_host_name

HEADER = """\
# Exported by pobsync (`pobsync export-configs`) from its SQL configuration.
# The running pobsync service does NOT read this file: the database is the source of
# truth. Edit it and run `pobsync import-configs` to apply a change, or use
# `pobsync configure-global` / `configure-host`. Format: docs/legacy-yaml.md
"""
_CHECKSUM_RE = re.compile(rb"^# export-sha256: ([0-9a-f]{64})\n", re.MULTILINE)
NEW_FILE_MODE = 0o640


class _Dumper(yaml.SafeDumper):
    """Block style with list items indented under their key, as people write YAML."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _dump(data: dict[str, Any]) -> str:
    return yaml.dump(
        data,
        Dumper=_Dumper,
        default_flow_style=False,
        sort_keys=False,
        allow_unicode=True,
        width=1 << 16,  # never fold a long path or pattern over two lines
    )


def _with_header(body: str) -> bytes:
    # The checksum covers the file without its own line, header comment included.
    digest = hashlib.sha256(f"{HEADER}{body}".encode()).hexdigest()
    return f"{HEADER}# export-sha256: {digest}\n{body}".encode()


def is_untouched_export(data: bytes) -> bool:
    """True when `data` is a pobsync export nobody has changed since it was written."""
    match = _CHECKSUM_RE.search(data)
    if match is None:
        return False
    rest = data[: match.start()] + data[match.end() :]
    return hashlib.sha256(rest).hexdigest() == match.group(1).decode()


def global_document(config: GlobalConfig) -> dict[str, Any]:
    ssh: dict[str, Any] = {"user": config.ssh_user, "port": config.ssh_port}
    if config.ssh_key_path:
        ssh["key"] = config.ssh_key_path
    if config.known_hosts_path:
        ssh["known_hosts"] = config.known_hosts_path
    ssh["connect_timeout"] = config.connect_timeout
    return {
        "backup_root": config.backup_root,
        "ssh": ssh,
        "rsync_timeout": config.rsync_timeout,
        "max_running_jobs": config.max_running_jobs,
        # Always written: a file without `retention` means "the default rules".
        "retention": _retention(config),
        **hook_document(config),
    }


def host_document(host: Host) -> dict[str, Any]:
    data: dict[str, Any] = {"name": host.name, "enabled": host.enabled, "address": host.address}
    if host.ssh_user:
        data["user"] = host.ssh_user
    if host.ssh_port is not None:
        data["port"] = host.ssh_port
    if host.ssh_key_path:
        data["key"] = host.ssh_key_path
    data["sources"] = list(host.sources)
    data["excludes"] = list(host.excludes)
    data["rsync_options"] = list(host.rsync_options)
    data["warning_exit_codes"] = list(host.warning_exit_codes)
    retention = _retention(host)
    if retention:
        data["retention"] = retention
    data.update(hook_document(host))
    data["schedules"] = [
        {"cron": s.cron, "timezone": s.timezone, "prune": s.prune, "enabled": s.enabled}
        for s in sorted(host.schedules.all(), key=lambda s: s.pk)
    ]
    return data


def hook_document(obj: Any) -> dict[str, Any]:
    """`bwlimit` and `hooks` of a host or the global configuration, when not defaults."""
    data: dict[str, Any] = {}
    if obj.bwlimit:
        data["bwlimit"] = obj.bwlimit
    hooks: dict[str, Any] = {}
    for key, attr in (("pre", "pre_hook"), ("post", "post_hook")):
        value = getattr(obj, attr)
        if value is not None and (value or isinstance(obj, Host)):
            hooks[key] = list(value)
    if isinstance(obj, Host):
        if obj.hook_timeout is not None:
            hooks["timeout"] = obj.hook_timeout
        for name in ("pre_may_fail", "dump_compress", "dumps_may_fail"):
            if getattr(obj, name):
                hooks[name] = True
        for name in ("remote_pre", "remote_post"):
            if getattr(obj, name):
                hooks[name] = list(getattr(obj, name))
        if obj.dumps:
            hooks["dumps"] = {name: list(argv) for name, argv in sorted(obj.dumps.items())}
    elif obj.hook_timeout != 600:
        hooks["timeout"] = obj.hook_timeout
    if hooks:
        data["hooks"] = hooks
    return data


def _retention(obj: Any) -> dict[str, int]:
    return {
        rule: getattr(obj, f"keep_{rule}")
        for rule in RULES
        if getattr(obj, f"keep_{rule}") is not None
    }


def render_global(config: GlobalConfig) -> bytes:
    return _with_header(_dump(global_document(config)))


def render_host(host: Host) -> bytes:
    return _with_header(_dump(host_document(host)))


@dataclass
class ExportResult:
    created: list[Path] = field(default_factory=list)
    updated: list[Path] = field(default_factory=list)
    unchanged: list[Path] = field(default_factory=list)
    refused: list[Path] = field(default_factory=list)  # edited or foreign files
    not_exported: list[Path] = field(default_factory=list)  # host files with no host


def write_atomic(path: Path, data: bytes) -> None:
    """Replace `path` with `data` so readers see the old file or the new one, never a
    mix; keeps the mode of a file it replaces."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = path.stat().st_mode & 0o7777
    except FileNotFoundError:
        mode = NEW_FILE_MODE
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp_name, mode)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def planned_files(prefix: Path, config: GlobalConfig) -> dict[Path, bytes]:
    files = {global_path(prefix): render_global(config)}
    for host in Host.objects.prefetch_related("schedules").order_by("name"):
        try:
            validate_host_name(host.name)  # it becomes a file name: never trust, check
        except ValidationError:
            continue
        files[host_path(prefix, host.name)] = render_host(host)
    return files


def export_config(
    prefix: Path, config: GlobalConfig, *, force: bool = False, dry_run: bool = False
) -> ExportResult:
    """Write every file, or none when one would overwrite an edited file (without force)."""
    files = planned_files(prefix, config)
    result = ExportResult()
    to_write: dict[Path, bytes] = {}
    for path, data in files.items():
        try:
            current = path.read_bytes()
        except FileNotFoundError:
            result.created.append(path)
            to_write[path] = data
            continue
        if current == data:
            result.unchanged.append(path)
        elif is_untouched_export(current) or force:
            result.updated.append(path)
            to_write[path] = data
        else:
            result.refused.append(path)
    directory = hosts_dir(prefix)
    if directory.is_dir():
        for path in sorted(directory.iterdir()):
            if path.suffix in SUFFIXES and not path.name.startswith(".") and path not in files:
                result.not_exported.append(path)
    if result.refused and not force:
        return result
    if not dry_run:
        for path, data in to_write.items():
            write_atomic(path, data)
    return result
