from __future__ import annotations

from django.db import models


class BackupRun(models.Model):
    """One execution of a backup of one host, from the CLI (job is NULL) or a runner."""

    class Outcome(models.TextChoices):
        RUNNING = "running"
        SUCCESS = "success"
        WARNING = "warning"
        FAILED = "failed"
        CANCELLED = "cancelled"

    host = models.ForeignKey("pobsync_models.Host", on_delete=models.CASCADE, related_name="runs")
    job = models.ForeignKey(
        "pobsync_models.BackupJob",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="runs",
    )
    snapshot = models.ForeignKey(
        "pobsync_models.SnapshotRecord",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="runs",
    )
    outcome = models.CharField(max_length=16, choices=Outcome.choices, default=Outcome.RUNNING)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    snapshot_name = models.CharField(max_length=64, blank=True)
    base_snapshot_name = models.CharField(max_length=64, blank=True)
    rsync_exit_code = models.IntegerField(null=True, blank=True)

    files_total = models.BigIntegerField(null=True, blank=True)
    files_transferred = models.BigIntegerField(null=True, blank=True)
    bytes_total = models.BigIntegerField(null=True, blank=True)
    # New inodes this run wrote (files rsync created rather than hard-linked), and their
    # bytes: what the run added to the storage, from rsync's own statistics.
    files_added = models.BigIntegerField(null=True, blank=True)
    bytes_added = models.BigIntegerField(null=True, blank=True)
    bytes_transferred = models.BigIntegerField(null=True, blank=True)

    progress_bytes = models.BigIntegerField(null=True, blank=True)
    progress_files = models.BigIntegerField(null=True, blank=True)
    progress_percent = models.FloatField(null=True, blank=True)
    progress_updated_at = models.DateTimeField(null=True, blank=True)

    message = models.TextField(blank=True, help_text="Warning or error in one or two lines.")
    log_tail = models.TextField(blank=True, help_text="The last lines of rsync's stderr.")
    worker_id = models.CharField(max_length=128, blank=True)
    hook_log = models.TextField(
        blank=True, help_text="Output of the hooks, remote commands and dumps (capped)."
    )
    dumps = models.JSONField(
        default=list,
        blank=True,
        help_text="Per dump: name, file, bytes, seconds, linked (unchanged), error.",
    )

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [
            models.Index(fields=["host", "-started_at"], name="run_host_started_idx"),
            models.Index(fields=["outcome", "-started_at"], name="run_outcome_idx"),
            models.Index(fields=["-started_at"], name="run_started_idx"),
        ]

    def __str__(self) -> str:
        return f"run {self.pk} {self.outcome}"
