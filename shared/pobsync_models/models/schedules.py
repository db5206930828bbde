from __future__ import annotations

from django.db import models

from pobsync_models.validators import validate_cron, validate_timezone


class Schedule(models.Model):
    """A cron schedule for one host. next_run_at (UTC) is denormalised so that "what is
    due" is one indexed query; the scheduler keeps it current."""

    host = models.ForeignKey(
        "pobsync_models.Host", on_delete=models.CASCADE, related_name="schedules"
    )
    # What the scheduler enqueues: a backup, or a verification of the host's snapshots.
    kind = models.CharField(
        max_length=16,
        choices=[("backup", "Backup"), ("verify", "Verify")],
        default="backup",
    )
    cron = models.CharField(max_length=128, validators=[validate_cron])
    timezone = models.CharField(max_length=64, default="UTC", validators=[validate_timezone])
    prune = models.BooleanField(default=False)
    enabled = models.BooleanField(default=True)
    # True on a verify schedule that follows the global one (GlobalConfig.verify_cron),
    # NULL otherwise: unique with (host, kind), so a host has at most one such row
    # while any number of its own (NULLs never collide, on SQLite and MariaDB alike).
    inherited = models.BooleanField(null=True, default=None, editable=False)
    next_run_at = models.DateTimeField(null=True, blank=True)
    last_scheduled_for = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["host__name", "id"]
        indexes = [models.Index(fields=["enabled", "next_run_at"], name="schedule_due_idx")]
        constraints = [
            models.UniqueConstraint(
                fields=["host", "kind", "inherited"], name="schedule_one_inherited"
            )
        ]

    def __str__(self) -> str:
        kind = "" if self.kind == "backup" else f" {self.kind}"
        kind += " (global)" if self.inherited else ""
        return f"{self.host.name}{kind}: {self.cron} ({self.timezone})"
