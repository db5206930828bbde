from __future__ import annotations

from django.db import models


class VerifyRun(models.Model):
    """One verification of a host's snapshots (`pobsync verify` or a verify job): what
    was read and what was wrong. The per-snapshot verdict lives on SnapshotRecord."""

    class Outcome(models.TextChoices):
        RUNNING = "running"
        OK = "ok"
        PROBLEMS = "problems"  # something missing, changed or unreadable
        FAILED = "failed"  # the run itself could not finish
        CANCELLED = "cancelled"

    host = models.ForeignKey(
        "pobsync_models.Host", on_delete=models.CASCADE, related_name="verify_runs"
    )
    job = models.ForeignKey(
        "pobsync_models.BackupJob",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="verify_runs",
    )
    outcome = models.CharField(max_length=16, choices=Outcome.choices, default=Outcome.RUNNING)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    worker_id = models.CharField(max_length=128, blank=True)
    snapshots = models.PositiveIntegerField(default=0)
    sample_percent = models.FloatField(null=True, blank=True)
    files_checked = models.BigIntegerField(default=0, help_text="manifest entries looked at")
    files_read = models.BigIntegerField(default=0, help_text="distinct inodes read")
    bytes_read = models.BigIntegerField(default=0)
    problems = models.PositiveIntegerField(default=0)
    message = models.TextField(blank=True)
    details = models.JSONField(default=list, blank=True, help_text="the first problems")

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [models.Index(fields=["host", "-started_at"], name="verify_host_started_idx")]

    def __str__(self) -> str:
        return f"verify {self.pk} {self.outcome}"
