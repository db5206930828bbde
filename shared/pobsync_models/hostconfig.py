"""Create-or-update of GlobalConfig and Host with validation before any write.

Shared by the configure-* commands and usable by the legacy YAML import: callers pass
plain field values; this module validates the whole object with the model validators,
reports the first problem as a ValidationError, and saves only a valid object.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from django.db import transaction

from pobsync_models.models import GlobalConfig, Host
from pobsync_models.models.config import DEFAULT_RETENTION

NEW = object()  # Change.old of a field on a newly created object


@dataclass(frozen=True)
class Change:
    field: str
    old: Any
    new: Any

    def __str__(self) -> str:
        if self.old is NEW:
            return f"{self.field}: {_show(self.new)}"
        return f"{self.field}: {_show(self.old)} -> {_show(self.new)}"


def _show(value: Any) -> str:
    if value is None:
        return "(inherit)"
    if isinstance(value, list):
        return "[" + ", ".join(str(v) for v in value) + "]"
    return str(value) if value != "" else "(default)"


def _apply(obj: Any, values: dict[str, Any], *, created: bool) -> list[Change]:
    changes = []
    for field, new in values.items():
        old = getattr(obj, field)
        if created or old != new:
            changes.append(Change(field, NEW if created else old, new))
            setattr(obj, field, new)
    return changes


def save_changes(obj: Any, created: bool, changes: list[Change]) -> None:
    """Save a prepared object, writing only the changed columns of an existing row.

    Host rows also carry the queue's host mutex (running_job, lease_token), written by
    runners at any moment: a full-row save of a config change read earlier could undo
    a claim, so updates name their fields.
    """
    if created:
        with transaction.atomic():
            obj.save()
    elif changes:
        fields = sorted({c.field for c in changes})
        if any(f.name == "updated_at" for f in obj._meta.concrete_fields):
            fields.append("updated_at")
        obj.save(update_fields=fields)


def prepare_global(
    values: dict[str, Any], *, exclude: Collection[str] = ()
) -> tuple[GlobalConfig, bool, list[Change]]:
    """The global configuration with `values` applied and fully validated, NOT saved.

    Returns (config, created, changes); raises ValidationError listing every invalid
    field (fields in `exclude` are not validated: the caller already reported them).
    """
    config = GlobalConfig.load()
    created = config is None
    if created:
        config = GlobalConfig(pk=1, **DEFAULT_RETENTION)
        changes = [Change(f, NEW, v) for f, v in DEFAULT_RETENTION.items() if f not in values]
    else:
        changes = []
    changes += _apply(config, values, created=created)
    config.full_clean(exclude=list(exclude) or None)
    return config, created, changes


def upsert_global(values: dict[str, Any]) -> tuple[GlobalConfig, bool, list[Change]]:
    """Returns (config, created, changes); raises ValidationError before writing."""
    config, created, changes = prepare_global(values)
    save_changes(config, created, changes)
    return config, created, changes


def prepare_host(
    name: str, values: dict[str, Any], *, exclude: Collection[str] = ()
) -> tuple[Host, bool, list[Change]]:
    """Host `name` (existing or new) with `values` applied and validated, NOT saved.

    Same contract as prepare_global.
    """
    host = Host.objects.filter(name=name).first()
    created = host is None
    if created:
        host = Host(name=name)
        changes = [Change("name", NEW, name)]
    else:
        changes = []
    changes += _apply(host, values, created=created)
    host.full_clean(exclude=list(exclude) or None)
    return host, created, changes


def upsert_host(name: str, values: dict[str, Any]) -> tuple[Host, bool, list[Change]]:
    """Returns (host, created, changes); raises ValidationError before writing."""
    host, created, changes = prepare_host(name, values)
    save_changes(host, created, changes)
    return host, created, changes
