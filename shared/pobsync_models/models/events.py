from __future__ import annotations

from django.db import models


class Event(models.Model):
    """Something an operator must hear about, recorded once per occurrence.

    Producers (runner, scheduler, web) write rows through pobsync_models.events.record_event
    and never call a notifier; channels, the dashboard's attention bar and /metrics read
    these rows. `key` is unique per occurrence (for example
    ``host-failing:web1:run-812``), so two processes that detect the same thing write one
    row between them.
    """

    class Kind(models.TextChoices):
        HOST_FAILING = "host_failing"
        HOST_OVERDUE = "host_overdue"
        HOST_RECOVERED = "host_recovered"
        JOB_REAPED = "job_reaped"
        RUNNER_LOST = "runner_lost"
        SCHEDULER_LOST = "scheduler_lost"
        STORAGE_UNMOUNTED = "storage_unmounted"
        STORAGE_FULL = "storage_full"
        SNAPSHOT_CORRUPT = "snapshot_corrupt"

    class Severity(models.TextChoices):
        INFO = "info"
        WARNING = "warning"
        CRITICAL = "critical"

    kind = models.CharField(max_length=32, choices=Kind.choices)
    key = models.CharField(max_length=255, unique=True)
    severity = models.CharField(max_length=16, choices=Severity.choices)
    host = models.ForeignKey(
        "pobsync_models.Host",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="events",
    )
    subject = models.CharField(
        max_length=128, help_text="What the event is about: a host, storage or process name."
    )
    message = models.TextField()
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["kind", "-created_at"], name="event_kind_idx")]

    def __str__(self) -> str:
        return f"{self.subject} {self.kind}"
