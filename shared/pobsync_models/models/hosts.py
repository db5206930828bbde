from __future__ import annotations

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from pobsync_models.models.config import RetentionFields
from pobsync_models.validators import (
    HOST_NAME_MAX,
    validate_address,
    validate_exclude_list,
    validate_exit_codes,
    validate_host_name,
    validate_optional_absolute_path,
    validate_rsync_options,
    validate_source_list,
    validate_ssh_user,
)


class Host(RetentionFields):
    """A remote machine pobsync pulls from. Empty/NULL fields inherit GlobalConfig.

    `running_job` + `lease_token` are the per-host mutex of the job queue: a runner owns
    the host while running_job is set (see pobsync_models.queue).

    `last_run_outcome`, `last_run_at`, `last_success_at` denormalise the host's run
    history so the dashboard judges every host with one scan of this table; only
    pobsync_models.run_status writes them, with conditional UPDATEs of those columns.
    """

    name = models.CharField(max_length=HOST_NAME_MAX, unique=True, validators=[validate_host_name])
    address = models.CharField(max_length=255, validators=[validate_address])
    ssh_user = models.CharField(max_length=64, blank=True, validators=[validate_ssh_user])
    ssh_port = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(65535)]
    )
    ssh_key_path = models.CharField(
        max_length=1024, blank=True, validators=[validate_optional_absolute_path]
    )
    sources = models.JSONField(default=list, blank=True, validators=[validate_source_list])
    excludes = models.JSONField(default=list, blank=True, validators=[validate_exclude_list])
    rsync_options = models.JSONField(default=list, blank=True, validators=[validate_rsync_options])
    warning_exit_codes = models.JSONField(
        default=list,
        blank=True,
        validators=[validate_exit_codes],
        help_text="rsync exit codes treated as a warning besides 24 (vanished files).",
    )
    enabled = models.BooleanField(default=True)
    # NULL means the default storage (pobsync_models.storages.storage_of).
    storage = models.ForeignKey(
        "pobsync_models.Storage",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="hosts",
        help_text="Where its snapshots live; empty means the default storage.",
    )
    # Real disk use of all its snapshots, each inode counted once (pobsync_runner.spacescan).
    disk_used_bytes = models.BigIntegerField(null=True, blank=True, editable=False)
    disk_used_inodes = models.BigIntegerField(null=True, blank=True, editable=False)
    disk_scanned_at = models.DateTimeField(null=True, blank=True, editable=False)

    running_job = models.ForeignKey(
        "pobsync_models.BackupJob",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
    )
    lease_token = models.CharField(max_length=64, blank=True, editable=False)

    last_run_outcome = models.CharField(
        max_length=16,
        blank=True,
        editable=False,
        help_text="Outcome of the newest finished run (blank: none finished yet).",
    )
    last_run_at = models.DateTimeField(
        null=True, blank=True, editable=False, help_text="When that run started."
    )
    last_success_at = models.DateTimeField(
        null=True,
        blank=True,
        editable=False,
        help_text="When the newest run with outcome success or warning finished.",
    )

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def last_outcome(self) -> str | None:
        """The newest finished run's outcome, None when none finished yet."""
        return self.last_run_outcome or None
