from __future__ import annotations

from django.db import models


class BackupJob(models.Model):
    """A row of the SQL job queue. The protocol (claim, heartbeat, finish, cancel, reap)
    lives in pobsync_models.queue; nothing else changes `state`.

    Every kind of job (backup, restore, ...) is a row here and shares the claim, the
    lease and the per-host mutex; `kind` picks the runner's executor and the payload
    lives in typed fields: `prune` for a backup, the `restore` request row for a
    restore. The queue itself never reads the payload.
    """

    class Kind(models.TextChoices):
        BACKUP = "backup"
        RESTORE = "restore"
        VERIFY = "verify"  # no payload: the rule is read when it runs (GlobalConfig.verify_*)

    class State(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"

    class Trigger(models.TextChoices):
        SCHEDULE = "schedule"
        MANUAL = "manual"

    host = models.ForeignKey("pobsync_models.Host", on_delete=models.CASCADE, related_name="jobs")
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.BACKUP)
    state = models.CharField(max_length=16, choices=State.choices, default=State.QUEUED)
    # 0 is the most urgent (as in Oban); the claim orders by (priority, run_after, id).
    priority = models.PositiveSmallIntegerField(default=5)
    run_after = models.DateTimeField()
    trigger = models.CharField(max_length=16, choices=Trigger.choices, default=Trigger.MANUAL)
    schedule = models.ForeignKey(
        "pobsync_models.Schedule",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="jobs",
    )
    scheduled_for = models.DateTimeField(null=True, blank=True)
    prune = models.BooleanField(default=False)  # backup payload
    restore = models.OneToOneField(  # restore payload
        "pobsync_models.RestoreRequest",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="job",
    )

    # The storage the host lived on when the job was queued (NULL: the default, when no
    # storage existed yet); moving the host moves its queued jobs (Host.save). The claim
    # filters on this column, so a runner serving some storages reads no host row.
    storage = models.ForeignKey(
        "pobsync_models.Storage",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
    )

    attempts = models.PositiveIntegerField(default=0)
    max_attempts = models.PositiveIntegerField(default=3)
    worker_id = models.CharField(max_length=128, blank=True)
    lease_token = models.CharField(max_length=64, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    cancel_requested = models.BooleanField(default=False)

    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["schedule", "scheduled_for"], name="job_unique_slot"),
        ]
        indexes = [
            models.Index(fields=["state", "priority", "run_after", "id"], name="job_claim_idx"),
            models.Index(fields=["state", "lease_expires_at"], name="job_lease_idx"),
            models.Index(fields=["host", "state"], name="job_host_state_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} job {self.pk} {self.host_id} {self.state}"

    def save(self, *args, **kwargs) -> None:
        if self._state.adding and self.storage_id is None:
            from pobsync_models.storages import job_storage_id

            self.storage_id = job_storage_id(self.host.storage_id)
        super().save(*args, **kwargs)
