from __future__ import annotations

from django.urls import path

from pobsync_web.browse import views as browse
from pobsync_web.dashboard import home, host, queue

app_name = "dashboard"

urlpatterns = [
    path("", home.index, name="index"),
    path("hosts/<str:name>/", host.host_detail, name="host-detail"),
    path("queue/", queue.queue, name="queue"),
    path("hosts/<str:name>/history/", browse.history, name="history"),
    path("hosts/<str:name>/snapshots/<str:snapshot>/browse/", browse.tree, name="browse"),
    path("hosts/<str:name>/snapshots/<str:snapshot>/download/", browse.download, name="download"),
    path("hosts/<str:name>/snapshots/<str:snapshot>/tar/", browse.tar, name="tar"),
    path("hosts/<str:name>/snapshots/<str:snapshot>/restore/", browse.restore, name="restore"),
]
