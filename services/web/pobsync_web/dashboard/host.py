from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_safe

from pobsync_web.access import staff_required
from pobsync_web.hostdetail import load_host_detail


@require_safe
@staff_required
def host_detail(request: HttpRequest, name: str) -> HttpResponse:
    """One host: config, schedules, running job, recent runs and its snapshots."""
    now = timezone.now()
    ctx = {"nav": "host", "now": now, "d": load_host_detail(name, now)}
    return render(request, "pobsync_web/host.html", ctx)
