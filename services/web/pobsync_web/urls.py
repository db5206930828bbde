from __future__ import annotations

from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from pobsync_web.metrics import metrics

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="dashboard:index"), name="home"),
    path("admin/", admin.site.urls),
    path("api/", include("pobsync_web.api.urls")),
    path("dashboard/", include("pobsync_web.dashboard.urls")),
    path("metrics", metrics, name="metrics"),
]

handler403 = "pobsync_web.errors.permission_denied"
handler404 = "pobsync_web.errors.not_found"
handler500 = "pobsync_web.errors.server_error"
