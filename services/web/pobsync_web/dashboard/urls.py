from __future__ import annotations

from django.urls import path

from pobsync_web.dashboard import home, host, queue

app_name = "dashboard"

urlpatterns = [
    path("", home.index, name="index"),
    path("hosts/<str:name>/", host.host_detail, name="host-detail"),
    path("queue/", queue.queue, name="queue"),
]
