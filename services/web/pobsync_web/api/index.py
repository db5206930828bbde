from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.urls import reverse

from pobsync_web.access import api_require_safe, api_staff_required

ENDPOINTS = (
    ("status", "api:status", "service health: database, scheduler, runners, queue, hosts"),
    ("hosts", "api:hosts", "hosts with their health; ?page=, ?page_size="),
    ("snapshots", "api:snapshots", "snapshot records; ?host=, ?state=, ?page="),
    ("runs", "api:runs", "backup runs, newest first; ?host=, ?outcome=, ?page="),
    ("jobs", "api:jobs", "queue jobs, newest first; ?host=, ?state=, ?kind=, ?page="),
    ("restores", "api:restores", "restore records, newest first; ?host=, ?page="),
    ("storages", "api:storages", "storages: used/free bytes and inodes, growth, days until full"),
    ("metrics", "metrics", "Prometheus text format (docs/api.md); a token or staff session"),
)


@api_require_safe
@api_staff_required
def index(request: HttpRequest) -> JsonResponse:
    """Names every endpoint, so the API can be explored from its root."""
    return JsonResponse(
        {
            "endpoints": {
                name: {"url": reverse(url_name), "description": text}
                for name, url_name, text in ENDPOINTS
            },
            "host_detail": reverse("api:host-detail", args=["NAME"]).replace("NAME", "<name>"),
            "snapshot_files": reverse("api:snapshot-files", args=["NAME", "SNAP"])
            .replace("NAME", "<name>")
            .replace("SNAP", "<snapshot>")
            + "?path=/",
            "restore_detail": reverse("api:restore-detail", args=[0]).replace("0", "<id>"),
            "docs": "docs/api.md",
        }
    )
