from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_safe

from pobsync_models.models import BackupJob
from pobsync_models.storages import job_wait_reason, wait_reasons
from pobsync_web.access import staff_required
from pobsync_web.overview import queue_counts, queued_jobs, running_jobs, worker_summaries

QUEUED_SHOWN = 200
FINISHED_SHOWN = 20


@require_safe
@staff_required
def queue(request: HttpRequest) -> HttpResponse:
    """The SQL queue: running jobs with progress, queued jobs in claim order, the last
    finished ones (with their errors)."""
    now = timezone.now()
    finished = (
        BackupJob.objects.filter(
            state__in=[
                BackupJob.State.SUCCEEDED,
                BackupJob.State.FAILED,
                BackupJob.State.CANCELLED,
            ]
        )
        .select_related("host")
        .order_by("-id")[:FINISHED_SHOWN]
    )
    queued = list(queued_jobs()[:QUEUED_SHOWN])
    reasons = wait_reasons((j.pk, j.host.storage_id) for j in queued) if queued else {}
    for job in queued:
        job.waiting = job_wait_reason(job, reasons)
    ctx = {
        "nav": "queue",
        "now": now,
        "queue": queue_counts(now),
        "running": list(running_jobs()),
        "queued": queued,
        "queued_shown": QUEUED_SHOWN,
        "finished": list(finished),
        "workers": worker_summaries(now),
    }
    return render(request, "pobsync_web/queue.html", ctx)
