"""pobsync's readiness checks (pobsync.E001...), for configuration that would fail at 2 a.m.

They are registered as deployment checks with the tag "pobsync" so that an unconfigured
server can still migrate and serve its pages; they run with `pobsync check`,
`manage.py check --deploy`, and at scheduler and runner start-up.

    E001 no global configuration / backup root not set
    E002 backup root does not exist or is not a directory
    E003 backup root is not writable
    E004 rsync not found on PATH
    E005 ssh not found on PATH
    E006 an enabled host's SSH private key is missing or unreadable
    E007 a stored row fails today's validation (e.g. a value ending in a newline, which
         older versions let through)
    E008 the default storage (the backup root) lacks its marker file, or has another's
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from django.core.checks import Error, register
from django.db import DatabaseError

TAG = "pobsync"


@register(TAG, deploy=True)
def check_backup_root(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    from pobsync_models.models import GlobalConfig

    try:
        config = GlobalConfig.load()
    except DatabaseError:
        return [
            Error(
                "the database is not reachable or not migrated",
                hint="run `pobsync django migrate`",
                id="pobsync.E001",
            )
        ]
    if config is None or not config.backup_root:
        return [
            Error(
                "no backup root is configured",
                hint="run `pobsync configure-global --backup-root PATH`",
                id="pobsync.E001",
            )
        ]
    root = Path(config.backup_root)
    if not root.is_dir():
        return [
            Error(
                f"backup root {root} does not exist or is not a directory",
                hint=f"create it (mkdir -p {root}) or mount the backup volume",
                id="pobsync.E002",
            )
        ]
    if not os.access(root, os.W_OK | os.X_OK):
        return [
            Error(
                f"backup root {root} is not writable by this user",
                hint="fix its owner or permissions",
                id="pobsync.E003",
            )
        ]
    return _default_storage_marker()


def _default_storage_marker() -> list[Error]:
    """The backup root is the default storage: without its marker file every backup
    on it stops at the mount guard (docs/storage.md)."""
    from pobsync_models.storages import default_storage, marker_problem, spec_of

    storage = default_storage()
    problem = marker_problem(spec_of(storage)) if storage is not None else None
    if problem is None:
        return []
    return [
        Error(
            problem,
            hint="mount the right disk, or run `pobsync storage mark default` on it",
            id="pobsync.E008",
        )
    ]


@register(TAG, deploy=True)
def check_tools(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    tools = (("rsync", "rsync", "pobsync.E004"), ("ssh", "openssh-client", "pobsync.E005"))
    return [
        Error(f"{tool} is not on PATH", hint=f"install the Debian package {package}", id=code)
        for tool, package, code in tools
        if shutil.which(tool) is None
    ]


@register(TAG, deploy=True)
def check_host_keys(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    from pobsync_models.models import GlobalConfig, Host
    from pobsync_models.specs import host_spec

    try:
        config = GlobalConfig.load()
        hosts = list(Host.objects.filter(enabled=True)) if config else []
    except DatabaseError:
        return []  # reported by check_backup_root
    errors = []
    for host in hosts:
        key = host_spec(host, config).ssh.key_path
        if not os.access(key, os.R_OK):
            errors.append(
                Error(
                    f"host {host.name}: SSH key {key} is missing or unreadable",
                    hint="run `pobsync ssh-key` to create the server key, or fix --key",
                    obj=host.name,
                    id="pobsync.E006",
                )
            )
    return errors


@register(TAG, deploy=True)
def check_stored_rows(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """Rows saved before a validator was tightened (validators used to accept a value
    ending in "\n": hosts named "web1\n", addresses, users, rsync options) would only
    fail at backup time; report each with what to run."""
    from django.core.exceptions import ValidationError

    from pobsync_models.models import GlobalConfig, Host, Schedule
    from pobsync_models.validators import excerpt, first_error

    try:
        rows = [
            *GlobalConfig.objects.all(),
            *Host.objects.order_by("name"),
            *Schedule.objects.select_related("host").order_by("pk"),
        ]
    except DatabaseError:
        return []  # reported by check_backup_root
    errors = []
    for row in rows:
        try:
            row.full_clean(validate_unique=False, validate_constraints=False)
        except ValidationError as exc:
            if isinstance(row, Host):
                what = f"host {excerpt(row.name)}"
                hint = (
                    f"fix it with `pobsync configure-host {row.name}` or in the admin"
                    if "name" not in exc.error_dict
                    else "rename it in the admin (Hosts), or remove it with `pobsync "
                    "remove-host` and configure it again under a valid name"
                )
            elif isinstance(row, Schedule):
                what = f"schedule {row.pk} of host {excerpt(row.host.name)}"
                hint = "fix it with `pobsync schedule HOST --cron ...` or in the admin"
            else:
                what = "the global configuration"
                hint = "fix it with `pobsync configure-global` or in the admin"
            errors.append(
                Error(f"{what}: {first_error(exc)}", hint=hint, obj=row, id="pobsync.E007")
            )
    return errors


def run_pobsync_checks() -> list[Any]:
    """Run only pobsync's checks; used by `pobsync check` and daemon start-up."""
    from django.core.checks.registry import registry

    return registry.run_checks(tags=[TAG], include_deployment_checks=True)
