from __future__ import annotations

import re
import secrets

from django.core.exceptions import ValidationError
from django.db import models

from pobsync_models.validators import validate_absolute_path, validate_host_name

DEFAULT_STORAGE_NAME = "default"
_THRESHOLD_RE = re.compile(r"^([0-9]+(?:\.[0-9]+)?)\s*(%|[KMGT]i?B?|B)?$", re.IGNORECASE)


def validate_storage_name(value: str) -> None:
    try:
        validate_host_name(value)  # same rule: a short name safe in paths and keys
    except ValidationError:
        raise ValidationError(
            f"storage name {value!r} is not valid: use letters, digits, '.', '_' or '-'"
        ) from None


def validate_threshold(value: str) -> None:
    """A minimum as a percentage ('5%') or an absolute figure ('20G', '100000')."""
    m = _THRESHOLD_RE.match(value or "")
    if not m or (m.group(2) == "%" and float(m.group(1)) > 100):
        raise ValidationError(
            f"{value!r} is not a minimum: give a percentage (5%) or an amount (20G, 100000)"
        )


def new_marker_id() -> str:
    return secrets.token_hex(16)


class Storage(models.Model):
    """A named backup location: hosts live on one; runners serve some.

    The marker file at `path` (written by `pobsync storage add` / `storage mark`) holds
    `marker_id`; a runner writes nothing under `path` unless it reads that id there
    (pobsync_models.storages). Exactly one storage is the default: it mirrors
    GlobalConfig.backup_root, and hosts without a storage of their own live on it.
    """

    name = models.CharField(max_length=64, unique=True, validators=[validate_storage_name])
    path = models.CharField(max_length=1024, validators=[validate_absolute_path])
    marker_id = models.CharField(max_length=32, default=new_marker_id, editable=False)
    # True on the default storage, NULL elsewhere: a unique column that allows one True
    # on SQLite and MariaDB alike (MariaDB has no partial unique index).
    is_default = models.BooleanField(null=True, default=None, unique=True, editable=False)
    max_running_jobs = models.PositiveIntegerField(
        default=0, help_text="Jobs running at once on this storage; 0 means no limit."
    )
    min_free_space = models.CharField(
        max_length=32,
        default="5%",
        validators=[validate_threshold],
        help_text="Free bytes a backup must leave: a percentage (5%) or an amount (20G).",
    )
    min_free_inodes = models.CharField(
        max_length=32,
        default="5%",
        validators=[validate_threshold],
        help_text="Free inodes a backup must leave: a percentage (5%) or a count (100000).",
    )
    # Space figures as last measured by a runner or the space scan (statvfs).
    total_bytes = models.BigIntegerField(null=True, blank=True, editable=False)
    free_bytes = models.BigIntegerField(null=True, blank=True, editable=False)
    total_inodes = models.BigIntegerField(null=True, blank=True, editable=False)
    free_inodes = models.BigIntegerField(null=True, blank=True, editable=False)
    measured_at = models.DateTimeField(null=True, blank=True, editable=False)
    # Open incidents: set when a guard trips, cleared when the storage is fine again.
    # Their start time makes the event key of that occurrence (docs/events.md).
    unmounted_since = models.DateTimeField(null=True, blank=True, editable=False)
    full_since = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs) -> None:
        from pobsync_models.models.config import GlobalConfig

        super().save(*args, **kwargs)
        if self.is_default:  # an update, not save(): GlobalConfig.save would call back here
            GlobalConfig.objects.filter(pk=1).exclude(backup_root=self.path).update(
                backup_root=self.path
            )

    @property
    def used_bytes(self) -> int | None:
        if self.total_bytes is None or self.free_bytes is None:
            return None
        return self.total_bytes - self.free_bytes

    @property
    def used_inodes(self) -> int | None:
        if self.total_inodes is None or self.free_inodes is None:
            return None
        return self.total_inodes - self.free_inodes


class StorageSample(models.Model):
    """One day's space figures of a storage, for growth per day and days until full."""

    storage = models.ForeignKey(Storage, on_delete=models.CASCADE, related_name="samples")
    day = models.DateField()
    used_bytes = models.BigIntegerField()
    free_bytes = models.BigIntegerField()
    used_inodes = models.BigIntegerField()
    free_inodes = models.BigIntegerField()

    class Meta:
        ordering = ["storage", "day"]
        constraints = [
            models.UniqueConstraint(fields=["storage", "day"], name="one_sample_per_day")
        ]

    def __str__(self) -> str:
        return f"{self.storage_id} {self.day}"
