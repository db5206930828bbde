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
            "docs": "docs/api.md",
        }
    )
