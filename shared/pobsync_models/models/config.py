from __future__ import annotations

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from pobsync_models.validators import (
    validate_absolute_path,
    validate_bwlimit,
    validate_cron,
    validate_hook_timeout,
    validate_optional_absolute_path,
    validate_server_hook,
    validate_ssh_user,
    validate_timezone,
)

RETENTION_RULES = ("last", "hourly", "daily", "weekly", "monthly", "yearly")


class RetentionFields(models.Model):
    """keep_* counts; on Host, NULL means "inherit the global default"."""

    keep_last = models.PositiveIntegerField(null=True, blank=True)
    keep_hourly = models.PositiveIntegerField(null=True, blank=True)
    keep_daily = models.PositiveIntegerField(null=True, blank=True)
    keep_weekly = models.PositiveIntegerField(null=True, blank=True)
    keep_monthly = models.PositiveIntegerField(null=True, blank=True)
    keep_yearly = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        abstract = True


class GlobalConfig(RetentionFields):
    """The single row (pk=1) of server-wide settings and defaults."""

    backup_root = models.CharField(max_length=1024, validators=[validate_absolute_path])
    ssh_user = models.CharField(max_length=64, default="root", validators=[validate_ssh_user])
    ssh_port = models.PositiveIntegerField(
        default=22, validators=[MinValueValidator(1), MaxValueValidator(65535)]
    )
    ssh_key_path = models.CharField(
        max_length=1024,
        blank=True,
        validators=[validate_optional_absolute_path],
        help_text="Private key; empty means <POBSYNC_SSH_DIR>/id_ed25519.",
    )
    known_hosts_path = models.CharField(
        max_length=1024,
        blank=True,
        validators=[validate_optional_absolute_path],
        help_text="pobsync-managed known_hosts; empty means <POBSYNC_SSH_DIR>/known_hosts.",
    )
    connect_timeout = models.PositiveIntegerField(
        default=10, validators=[MinValueValidator(1)], help_text="ssh ConnectTimeout, seconds."
    )
    rsync_timeout = models.PositiveIntegerField(
        default=900,
        validators=[MinValueValidator(1)],
        help_text="rsync --timeout: seconds without I/O before a run is failed.",
    )
    max_running_jobs = models.PositiveIntegerField(
        default=0, help_text="Jobs running at once across all runners; 0 means no limit."
    )
    pre_hook = models.JSONField(
        default=list,
        blank=True,
        validators=[validate_server_hook],
        help_text="Default server-side pre hook for hosts without their own (JSON argv).",
    )
    post_hook = models.JSONField(
        default=list,
        blank=True,
        validators=[validate_server_hook],
        help_text="Default server-side post hook for hosts without their own (JSON argv).",
    )
    hook_timeout = models.PositiveIntegerField(
        default=600,
        validators=[MinValueValidator(1), validate_hook_timeout],
        help_text="Seconds a hook, remote command or dump may run before it is killed.",
    )
    bwlimit = models.CharField(
        max_length=16,
        blank=True,
        validators=[validate_bwlimit],
        help_text="Default rsync --bwlimit with a unit, e.g. 20M; empty: no limit.",
    )
    # Scheduled verification (verify jobs): every snapshot not read in full for this many
    # days is read in full, so each inode is re-read at least that often; the other
    # snapshots' files are sampled at verify_sample_percent.
    verify_outdated_days = models.PositiveIntegerField(
        default=30, validators=[MinValueValidator(1)]
    )
    verify_sample_percent = models.FloatField(
        default=5.0, validators=[MinValueValidator(0.0), MaxValueValidator(100.0)]
    )
    # The global verification schedule: every host without a verify schedule of its own
    # gets one that follows it (Schedule.inherited, pobsync_models.schedules
    # .sync_global_verify). Empty: no global schedule.
    verify_cron = models.CharField(
        max_length=128,
        blank=True,
        validators=[validate_cron],
        help_text="Cron of the verify jobs of every host without its own verify schedule.",
    )
    verify_timezone = models.CharField(max_length=64, default="UTC", validators=[validate_timezone])
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "global configuration"
        verbose_name_plural = "global configuration"

    def __str__(self) -> str:
        return f"global configuration ({self.backup_root})"

    def save(self, *args, **kwargs) -> None:
        from pobsync_models.storages import sync_default_storage

        self.pk = 1
        super().save(*args, **kwargs)
        if self.backup_root:
            sync_default_storage(self.backup_root)  # the default storage is the backup root

    @classmethod
    def load(cls) -> GlobalConfig | None:
        return cls.objects.filter(pk=1).first()


# Defaults for a fresh GlobalConfig: the 3 newest snapshots whatever their age (so a
# second manual backup on the same day does not prune the first), a week of dailies, a
# month of weeklies, half a year of monthlies. Applied by configure-global on creation
# (documented in docs/retention.md); the model columns stay NULL-able so "unset" is
# representable.
DEFAULT_RETENTION = {"keep_last": 3, "keep_daily": 7, "keep_weekly": 4, "keep_monthly": 6}
