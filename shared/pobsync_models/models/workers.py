from __future__ import annotations

from django.db import models


class WorkerProcess(models.Model):
    """The process registry: each scheduler and runner upserts its row on every pass and
    deletes it on clean exit. Health checks and /api/status/ read last_seen_at."""

    class Kind(models.TextChoices):
        SCHEDULER = "scheduler"
        RUNNER = "runner"

    worker_id = models.CharField(max_length=128, unique=True, help_text="hostname:pid")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    version = models.CharField(max_length=32, blank=True)
    started_at = models.DateTimeField()
    last_seen_at = models.DateTimeField()
    storages = models.JSONField(
        default=list, blank=True, help_text="Names of the storages a runner serves."
    )
    current_job = models.ForeignKey(
        "pobsync_models.BackupJob",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )

    class Meta:
        ordering = ["kind", "worker_id"]
        verbose_name_plural = "worker processes"  # Django's default adds an "s": "processs"
        indexes = [models.Index(fields=["kind", "last_seen_at"], name="worker_seen_idx")]

    def __str__(self) -> str:
        return f"{self.kind} {self.worker_id}"
