from __future__ import annotations

from django.db import models


class SnapshotRecord(models.Model):
    """One snapshot directory under <backup_root>/<host>/.

    States: complete (committed), partial (interrupted; never counted as complete),
    pruned (deleted by retention; the row stays as history), superseded (a partial a
    later run continued: its directory became that run's, which names it as its seed),
    missing (the directory vanished outside pobsync, found by discover-snapshots).
    """

    class State(models.TextChoices):
        COMPLETE = "complete"
        PARTIAL = "partial"
        PRUNED = "pruned"
        SUPERSEDED = "superseded"
        MISSING = "missing"

    class Integrity(models.TextChoices):
        UNVERIFIED = "unverified"
        VERIFIED = "verified"
        CORRUPT = "corrupt"

    host = models.ForeignKey(
        "pobsync_models.Host", on_delete=models.CASCADE, related_name="snapshots"
    )
    name = models.CharField(max_length=64)
    path = models.CharField(max_length=1024)
    state = models.CharField(max_length=16, choices=State.choices)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    base_name = models.CharField(max_length=64, blank=True)
    base = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children"
    )
    rsync_exit_code = models.IntegerField(null=True, blank=True)
    files_total = models.BigIntegerField(null=True, blank=True)
    files_transferred = models.BigIntegerField(null=True, blank=True)
    bytes_total = models.BigIntegerField(null=True, blank=True)
    bytes_transferred = models.BigIntegerField(null=True, blank=True)
    pobsync_version = models.CharField(max_length=32, blank=True)
    # From the space scan (pobsync_runner.spacescan): what this snapshot added to the
    # disk (inodes not in its predecessor) and what deleting it frees now (disk bytes,
    # inodes); scan_key names the neighbours they were computed against.
    added_bytes = models.BigIntegerField(null=True, blank=True)
    added_inodes = models.BigIntegerField(null=True, blank=True)
    exclusive_bytes = models.BigIntegerField(null=True, blank=True)
    exclusive_inodes = models.BigIntegerField(null=True, blank=True)
    scan_key = models.CharField(max_length=200, blank=True)
    scanned_at = models.DateTimeField(null=True, blank=True)
    has_metadata = models.BooleanField(default=True)
    discovered_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    pruned_at = models.DateTimeField(null=True, blank=True)

    # What verification knows about the bytes (pobsync_runner.verify). `verified_at` is
    # the last run that checked any of its files, `fully_verified_at` the last that read
    # every file (the "outdated after N days" rule); `corrupt_paths` holds the first few
    # damaged paths for the host page and a restore's warning.
    integrity = models.CharField(
        max_length=16, choices=Integrity.choices, default=Integrity.UNVERIFIED
    )
    verified_at = models.DateTimeField(null=True, blank=True)
    fully_verified_at = models.DateTimeField(null=True, blank=True)
    corrupt_files = models.PositiveIntegerField(default=0)
    corrupt_paths = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["host__name", "-name"]
        constraints = [
            models.UniqueConstraint(fields=["host", "name"], name="snapshot_unique_name"),
        ]
        indexes = [
            models.Index(fields=["host", "state", "-name"], name="snapshot_host_state_idx"),
            # The dashboard's totals by state: a range per state instead of a full scan.
            models.Index(fields=["state"], name="snapshot_state_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.host_id}/{self.name} ({self.state})"
