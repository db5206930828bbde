"""Admin: configuration is editable; runs, snapshots, jobs and workers are read-only
history (the queue protocol and the engine own them)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from pobsync_models.models import (
    BackupJob,
    BackupRun,
    Event,
    GlobalConfig,
    Host,
    RestoreRequest,
    Schedule,
    SnapshotRecord,
    Storage,
    VerifyRun,
    WorkerProcess,
)

admin.site.site_header = "pobsync administration"
admin.site.site_title = "pobsync"
admin.site.site_url = "/dashboard/"  # "View site" leads to the dashboard


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(GlobalConfig)
class GlobalConfigAdmin(admin.ModelAdmin):
    list_display = ("backup_root", "ssh_user", "ssh_port", "rsync_timeout", "updated_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return not GlobalConfig.objects.exists()

    def save_model(self, request: HttpRequest, obj: GlobalConfig, form: Any, change: bool) -> None:
        from pobsync_models.global_verify import sync_global_verify

        super().save_model(request, obj, form, change)
        sync_global_verify()  # the global verify cron reaches every host's row now


@admin.register(Storage)
class StorageAdmin(admin.ModelAdmin):
    """Storages are added here or with `pobsync storage add`; either writes the marker
    file. The path is fixed once added (the default storage's follows the global
    backup root): a disk that moved is a new storage, or a `storage mark` by hand."""

    list_display = (
        "name",
        "path",
        "is_default",
        "max_running_jobs",
        "min_free_space",
        "min_free_inodes",
        "free_bytes",
        "free_inodes",
        "measured_at",
    )
    readonly_fields = (
        "marker_id",
        "is_default",
        "total_bytes",
        "free_bytes",
        "total_inodes",
        "free_inodes",
        "measured_at",
        "unmounted_since",
        "full_since",
    )

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        return (*self.readonly_fields, "path") if obj is not None else self.readonly_fields

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return obj is None or not obj.is_default

    def save_model(self, request: HttpRequest, obj: Storage, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        if change:
            return
        from pobsync_models.storages import write_marker

        try:
            path = write_marker(obj)
        except OSError as exc:
            self.message_user(
                request,
                f"storage {obj.name}: marker not written ({exc.strerror}); mount the disk "
                f"and run `pobsync storage mark {obj.name}`",
                messages.WARNING,
            )
        else:
            self.message_user(request, f"storage {obj.name}: marker written at {path}")


# Editing any of these makes the stored due time stale; NULL tells the scheduler to
# compute it afresh on its next tick (as `pobsync schedule` and the YAML import do).
TIMING_FIELDS = frozenset({"cron", "timezone", "enabled"})


def forget_due_time_if_retimed(schedule: Schedule, changed: list[str]) -> None:
    if schedule.pk and TIMING_FIELDS.intersection(changed):
        schedule.next_run_at = None


class ScheduleInline(admin.TabularInline):
    model = Schedule
    extra = 0
    fields = ("cron", "timezone", "prune", "enabled", "next_run_at")
    readonly_fields = ("next_run_at",)


@admin.register(Host)
class HostAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "address",
        "ssh_user",
        "ssh_port",
        "storage",
        "enabled",
        "running_job",
    )
    list_filter = ("enabled", "storage")
    search_fields = ("name", "address")
    readonly_fields = (
        "running_job",
        "lease_token",
        "last_run_outcome",
        "last_run_at",
        "last_success_at",
        "created_at",
        "updated_at",
    )
    inlines = [ScheduleInline]
    actions = ["enqueue_backup", "enqueue_backup_and_prune"]

    def save_model(self, request: HttpRequest, obj: Host, form: Any, change: bool) -> None:
        """Write only the edited fields: a whole-row save would put back the stale
        queue mutex and run status read when the form was loaded (runners and
        pobsync_models.run_status write those columns concurrently)."""
        if not change:
            obj.save()
        elif form.changed_data:
            obj.save(update_fields=[*form.changed_data, "updated_at"])

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        for schedule_form in formset.forms:
            forget_due_time_if_retimed(schedule_form.instance, schedule_form.changed_data)
        super().save_formset(request, form, formset, change)

    def _enqueue(self, request: HttpRequest, hosts: QuerySet, *, prune: bool) -> None:
        from pobsync_models.queue import enqueue

        jobs = [enqueue(host, prune=prune).pk for host in hosts]
        self.message_user(
            request,
            f"queued {len(jobs)} backup job(s): {', '.join(map(str, jobs))}; a runner picks "
            "them up (see Backup jobs)",
            messages.SUCCESS,
        )

    @admin.action(description="Back up now (queue a manual job)")
    def enqueue_backup(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._enqueue(request, queryset, prune=False)

    @admin.action(description="Back up now and apply retention")
    def enqueue_backup_and_prune(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._enqueue(request, queryset, prune=True)


@admin.register(Schedule)
class ScheduleAdmin(admin.ModelAdmin):
    list_display = (
        "host", "kind", "inherited", "cron", "timezone", "prune", "enabled", "next_run_at"
    )  # fmt: skip
    list_filter = ("kind", "inherited", "enabled", "prune", "timezone")
    search_fields = ("host__name", "cron")
    list_select_related = ("host",)
    readonly_fields = ("next_run_at", "last_scheduled_for")

    def save_model(self, request: HttpRequest, obj: Schedule, form: Any, change: bool) -> None:
        from pobsync_models.global_verify import sync_global_verify

        forget_due_time_if_retimed(obj, form.changed_data)
        super().save_model(request, obj, form, change)
        sync_global_verify()  # a host's own verify schedule replaces the global one


@admin.register(BackupJob)
class BackupJobAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "kind",
        "host",
        "state",
        "trigger",
        "priority",
        "run_after",
        "started_at",
        "finished_at",
        "attempts",
        "worker_id",
        "lease_expires_at",
    )
    list_filter = ("kind", "state", "trigger", ("host", admin.RelatedOnlyFieldListFilter))
    search_fields = ("host__name", "worker_id")
    list_select_related = ("host",)
    actions = ["cancel_jobs"]

    @admin.action(description="Cancel (queued at once, running within seconds)")
    def cancel_jobs(self, request: HttpRequest, queryset: QuerySet) -> None:
        from pobsync_models.queue import CANCEL_REQUESTED, CANCELLED, cancel

        results = [cancel(pk) for pk in queryset.values_list("pk", flat=True)]
        self.message_user(
            request,
            f"{results.count(CANCELLED)} cancelled, {results.count(CANCEL_REQUESTED)} "
            f"running job(s) asked to stop, "
            f"{len(results) - results.count(CANCELLED) - results.count(CANCEL_REQUESTED)} "
            "already finished",
            messages.SUCCESS,
        )


@admin.register(BackupRun)
class BackupRunAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "host",
        "outcome",
        "started_at",
        "finished_at",
        "snapshot_name",
        "rsync_exit_code",
        "bytes_transferred",
    )
    list_filter = ("outcome",)
    search_fields = ("host__name", "snapshot_name", "message")
    list_select_related = ("host",)
    date_hierarchy = "started_at"


@admin.register(RestoreRequest)
class RestoreRequestAdmin(ReadOnlyAdmin):
    """The restore records (docs/restore.md). Restores are started with `pobsync
    restore` or the browse page's form; the "add" permission is what that form checks."""

    list_display = (
        "id",
        "host",
        "snapshot_name",
        "target",
        "requested_by",
        "outcome",
        "created_at",
        "finished_at",
        "bytes_transferred",
    )
    list_filter = ("outcome", "target")
    search_fields = ("host__name", "snapshot_name", "requested_by")
    list_select_related = ("host",)


@admin.register(SnapshotRecord)
class SnapshotRecordAdmin(ReadOnlyAdmin):
    list_display = (
        "name",
        "host",
        "state",
        "integrity",
        "base_name",
        "bytes_total",
        "finished_at",
        "verified_at",
    )
    list_filter = ("state", "integrity")
    search_fields = ("host__name", "name")
    list_select_related = ("host",)


@admin.register(VerifyRun)
class VerifyRunAdmin(ReadOnlyAdmin):
    list_display = ("started_at", "host", "outcome", "snapshots", "files_read", "problems")
    list_filter = ("outcome",)
    search_fields = ("host__name", "message")
    list_select_related = ("host",)
    date_hierarchy = "started_at"


@admin.register(WorkerProcess)
class WorkerProcessAdmin(ReadOnlyAdmin):
    list_display = ("worker_id", "kind", "version", "started_at", "last_seen_at", "current_job")
    list_filter = ("kind",)


@admin.register(Event)
class EventAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "kind", "severity", "subject", "message")
    list_filter = ("kind", "severity")
    search_fields = ("subject", "key", "message")
    date_hierarchy = "created_at"


from pobsync_models import admin_alerts  # noqa: E402, F401  (alerts' admin: issue 14)
