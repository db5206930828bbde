from __future__ import annotations

from django.db import models


class RestoreRequest(models.Model):
    """What a restore job restores, and the record of how it went.

    The request is the restore job's payload (BackupJob.restore points here) and stays
    as the restore's history after the job row is gone: who asked, from which
    snapshot, which paths, to where, and the outcome with its figures. Only
    pobsync_models.restores creates it and only pobsync_runner.restore fills in the
    outcome.
    """

    class Target(models.TextChoices):
        DIR = "dir"  # a directory where the runner runs (the backup server)
        HOST = "host"  # pushed back over rsync+ssh with the host's restore key

    class Outcome(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        SUCCESS = "success"
        FAILED = "failed"
        CANCELLED = "cancelled"

    host = models.ForeignKey(
        "pobsync_models.Host", on_delete=models.CASCADE, related_name="restores"
    )
    snapshot = models.ForeignKey(
        "pobsync_models.SnapshotRecord",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="restores",
    )
    snapshot_name = models.CharField(max_length=64)
    paths = models.JSONField(default=list, help_text="Absolute paths as they were on the host.")
    target = models.CharField(max_length=8, choices=Target.choices)
    target_dir = models.CharField(max_length=4096, blank=True)
    target_host = models.ForeignKey(
        "pobsync_models.Host",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    target_path = models.CharField(
        max_length=4096, blank=True, help_text="Prefix on the target host; blank: original paths."
    )
    overwrite = models.BooleanField(default=False)
    dry_run = models.BooleanField(default=False)
    allow_partial = models.BooleanField(default=False)
    requested_by = models.CharField(max_length=150)

    outcome = models.CharField(max_length=16, choices=Outcome.choices, default=Outcome.PENDING)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    worker_id = models.CharField(max_length=128, blank=True)
    rsync_exit_code = models.IntegerField(null=True, blank=True)
    files_total = models.BigIntegerField(null=True, blank=True)
    files_transferred = models.BigIntegerField(null=True, blank=True)
    bytes_total = models.BigIntegerField(null=True, blank=True)
    bytes_transferred = models.BigIntegerField(null=True, blank=True)
    progress_bytes = models.BigIntegerField(null=True, blank=True)
    progress_files = models.BigIntegerField(null=True, blank=True)
    progress_percent = models.FloatField(null=True, blank=True)
    progress_updated_at = models.DateTimeField(null=True, blank=True)
    message = models.TextField(blank=True)
    log_tail = models.TextField(blank=True, help_text="The last lines of rsync's stderr.")
    changes = models.TextField(
        blank=True, help_text="rsync's itemized changes (dry runs), at most a few thousand lines."
    )

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["host", "-id"], name="restore_host_idx")]

    def __str__(self) -> str:
        return f"restore {self.pk} {self.host_id}/{self.snapshot_name} {self.outcome}"

    @property
    def target_label(self) -> str:
        if self.target == self.Target.DIR:
            return f"dir {self.target_dir}"
        host = self.target_host.name if self.target_host_id else "?"
        return f"host {host}:{self.target_path or '(original paths)'}"
