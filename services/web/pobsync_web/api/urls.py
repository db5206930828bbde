from __future__ import annotations

from django.urls import path

from pobsync_web.api import hosts, index, jobs, restores, runs, snapshots, status, storages

app_name = "api"

urlpatterns = [
    path("", index.index, name="index"),
    path("status/", status.status, name="status"),
    path("hosts/", hosts.host_list, name="hosts"),
    path("hosts/<str:name>/", hosts.host_detail, name="host-detail"),
    path("snapshots/", snapshots.snapshot_list, name="snapshots"),
    path("runs/", runs.run_list, name="runs"),
    path("jobs/", jobs.job_list, name="jobs"),
    path("restores/", restores.restore_list, name="restores"),
    path("restores/<int:pk>/", restores.restore_detail, name="restore-detail"),
    path(
        "hosts/<str:name>/snapshots/<str:snapshot>/files/",
        restores.file_list,
        name="snapshot-files",
    ),
    path("storages/", storages.storage_list, name="storages"),
]
