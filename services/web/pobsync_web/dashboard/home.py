from __future__ import annotations

from datetime import timedelta

from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_safe

from pobsync_models.storages import storage_summaries
from pobsync_web.access import staff_required
from pobsync_web.overview import (
    all_host_rows,
    delivery_counts,
    fill_rows,
    host_counts,
    queue_counts,
    queued_jobs,
    run_counts_since,
    running_jobs,
    snapshot_totals,
    upcoming_schedules,
    worker_summaries,
)

HOSTS_PER_PAGE = 100
UPCOMING = 8
QUEUED_PREVIEW = 5


@require_safe
@staff_required
def index(request: HttpRequest) -> HttpResponse:
    """Every host's state at a glance, failing and overdue first, with the summaries."""
    now = timezone.now()
    rows = all_host_rows(now)
    page = Paginator(rows, HOSTS_PER_PAGE).get_page(request.GET.get("page"))
    page.object_list = fill_rows(list(page.object_list))  # details for the shown rows only
    ctx = {
        "storages": storage_summaries(now.date()),
        "nav": "dashboard",
        "now": now,
        "hosts": host_counts(rows),
        "page": page,
        # One reverse() instead of one per row (host names are slugs; see the test).
        "host_url": reverse("dashboard:host-detail", args=["x"])[: -len("x/")],
        "runs_24h": run_counts_since(now - timedelta(hours=24)),
        "snapshots": snapshot_totals(),
        "queue": queue_counts(now),
        "running": list(running_jobs()),
        "queued": list(queued_jobs()[:QUEUED_PREVIEW]),
        "upcoming": upcoming_schedules(UPCOMING),
        "workers": worker_summaries(now),
        "deliveries": delivery_counts(),
    }
    return render(request, "pobsync_web/dashboard.html", ctx)
