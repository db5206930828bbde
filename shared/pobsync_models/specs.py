"""Typed domain objects for engine boundaries, and the one place models become them.

Engine code (rsync, snapshots, retention, locking) takes these frozen dataclasses and
never a model or a dict, so it can be tested without a database and cannot silently
read a field that was not resolved against the global defaults.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from django.conf import settings

if TYPE_CHECKING:
    from pobsync_models.models import GlobalConfig, Host
    from pobsync_models.storages import StorageSpec

# Snapshot names are UTC timestamps that sort lexically: 2026-11-27T203045Z. No colons:
# rsync reads "a:b" as a remote path, and some tools choke on them.
_SNAPSHOT_NAME_RE = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2})(\d{2})(\d{2})Z(?:-(\d+))?")
SNAPSHOT_NAME_FORMAT = "%Y-%m-%dT%H%M%SZ"


@dataclass(frozen=True, order=True)
class SnapshotName:
    """A snapshot directory name; `seq` disambiguates two snapshots in one second."""

    value: str

    def __post_init__(self) -> None:
        if not _SNAPSHOT_NAME_RE.fullmatch(self.value):
            raise ValueError(f"{self.value!r} is not a snapshot name (YYYY-MM-DDTHHMMSSZ)")

    @classmethod
    def for_time(cls, when: datetime, seq: int = 0) -> SnapshotName:
        base = when.astimezone(UTC).strftime(SNAPSHOT_NAME_FORMAT)
        return cls(base if seq == 0 else f"{base}-{seq}")

    @classmethod
    def is_valid(cls, value: str) -> bool:
        return bool(_SNAPSHOT_NAME_RE.fullmatch(value))

    @property
    def time(self) -> datetime:
        m = _SNAPSHOT_NAME_RE.fullmatch(self.value)
        assert m is not None  # noqa: S101  (checked in __post_init__)
        year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
        return datetime(year, month, day, hour, minute, second, tzinfo=UTC)

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class RetentionPolicy:
    """keep_* counts; 0 means the rule is unused. All zero keeps everything."""

    keep_last: int = 0
    keep_hourly: int = 0
    keep_daily: int = 0
    keep_weekly: int = 0
    keep_monthly: int = 0
    keep_yearly: int = 0

    @property
    def is_empty(self) -> bool:
        return not any(
            (
                self.keep_last,
                self.keep_hourly,
                self.keep_daily,
                self.keep_weekly,
                self.keep_monthly,
                self.keep_yearly,
            )
        )


@dataclass(frozen=True)
class SshSpec:
    user: str
    address: str
    port: int
    key_path: Path
    known_hosts_path: Path
    connect_timeout: int


@dataclass(frozen=True)
class HookSpec:
    """Hooks, remote commands and dumps of one host (docs/hooks.md), defaults resolved.

    Every command is an argv tuple; an empty tuple means "none".
    """

    pre: tuple[str, ...] = ()
    post: tuple[str, ...] = ()
    remote_pre: tuple[str, ...] = ()
    remote_post: tuple[str, ...] = ()
    timeout: int = 600
    pre_may_fail: bool = False
    dumps: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (NAME, argv), in name order
    dump_compress: bool = False
    dumps_may_fail: bool = False
    command_keys_dir: Path = Path("/nonexistent")

    @property
    def any_remote(self) -> bool:
        return bool(self.remote_pre or self.remote_post or self.dumps)


@dataclass(frozen=True)
class HostSpec:
    """Everything the engine needs to back up one host, with defaults resolved."""

    name: str
    ssh: SshSpec
    sources: tuple[str, ...]
    excludes: tuple[str, ...] = ()
    rsync_options: tuple[str, ...] = ()
    warning_exit_codes: frozenset[int] = field(default_factory=lambda: frozenset({24}))
    rsync_timeout: int = 900
    retention: RetentionPolicy = field(default_factory=RetentionPolicy)
    backup_root: Path = Path("/nonexistent")  # the root of the host's storage
    storage: StorageSpec | None = None
    hooks: HookSpec = field(default_factory=HookSpec)
    bwlimit: str = ""  # rsync --bwlimit value with its unit; "" means no limit

    @property
    def host_dir(self) -> Path:
        return host_dir(self.backup_root, self.name)


def host_dir(storage_root: Path | str, host_name: str) -> Path:
    """THE function every path of a host's snapshots derives from: its directory on the
    storage it lives on. Host names are validated as one safe path component."""
    return Path(storage_root) / host_name


RETENTION_FIELDS = (
    "keep_last",
    "keep_hourly",
    "keep_daily",
    "keep_weekly",
    "keep_monthly",
    "keep_yearly",
)


def default_key_path() -> Path:
    return Path(settings.POBSYNC_SSH_DIR) / "id_ed25519"


def default_known_hosts_path() -> Path:
    return Path(settings.POBSYNC_SSH_DIR) / "known_hosts"


def command_keys_dir() -> Path:
    """Where `pobsync ssh-key --command` keeps one key pair per remote command."""
    return Path(settings.POBSYNC_SSH_DIR) / "commands"


def hook_spec(host: Host, config: GlobalConfig) -> HookSpec:
    """Host hooks override the global ones; NULL inherits, [] means none."""
    pre = host.pre_hook if host.pre_hook is not None else config.pre_hook
    post = host.post_hook if host.post_hook is not None else config.post_hook
    return HookSpec(
        pre=tuple(pre or ()),
        post=tuple(post or ()),
        remote_pre=tuple(host.remote_pre or ()),
        remote_post=tuple(host.remote_post or ()),
        timeout=host.hook_timeout or config.hook_timeout,
        pre_may_fail=host.pre_may_fail,
        dumps=tuple((name, tuple(argv)) for name, argv in sorted((host.dumps or {}).items())),
        dump_compress=host.dump_compress,
        dumps_may_fail=host.dumps_may_fail,
        command_keys_dir=command_keys_dir(),
    )


def retention_policy(host: Host, config: GlobalConfig) -> RetentionPolicy:
    """Host values override the global ones field by field; NULL inherits."""
    values = {}
    for name in RETENTION_FIELDS:
        own = getattr(host, name)
        values[name] = own if own is not None else (getattr(config, name) or 0)
    return RetentionPolicy(**values)


def host_storage(host: Host, config: GlobalConfig) -> StorageSpec:
    """The storage `host` lives on, as a spec (pobsync_models.storages.storage_of)."""
    from pobsync_models.storages import StorageSpec, spec_of, storage_of

    storage = storage_of(host)
    if storage is None:  # no Storage row yet: the backup root, without a marker
        return StorageSpec(name="default", path=Path(config.backup_root), marker_id="")
    return spec_of(storage)


def host_spec(host: Host, config: GlobalConfig) -> HostSpec:
    storage = host_storage(host, config)
    ssh = SshSpec(
        user=host.ssh_user or config.ssh_user,
        address=host.address,
        port=host.ssh_port or config.ssh_port,
        key_path=Path(host.ssh_key_path or config.ssh_key_path or default_key_path()),
        known_hosts_path=Path(config.known_hosts_path or default_known_hosts_path()),
        connect_timeout=config.connect_timeout,
    )
    return HostSpec(
        name=host.name,
        ssh=ssh,
        sources=tuple(host.sources),
        excludes=tuple(host.excludes),
        rsync_options=tuple(host.rsync_options),
        warning_exit_codes=frozenset({24, *host.warning_exit_codes}),
        rsync_timeout=config.rsync_timeout,
        retention=retention_policy(host, config),
        backup_root=storage.path,
        storage=storage,
        hooks=hook_spec(host, config),
        bwlimit=host.bwlimit or config.bwlimit,
    )
