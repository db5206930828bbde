from __future__ import annotations

from django.http import HttpRequest, JsonResponse

from pobsync_models.models import BackupJob
from pobsync_web.access import api_require_safe, api_staff_required
from pobsync_web.api import encode
from pobsync_web.api.filters import choice_param, host_param
from pobsync_web.api.pages import paginate


@api_require_safe
@api_staff_required
def job_list(request: HttpRequest) -> JsonResponse:
    """Queue jobs of every kind and state, newest first; ?state=queued gives the waiting
    ones, ?kind=restore the restores."""
    host = host_param(request)
    rows = BackupJob.objects.order_by("-id")
    if host is not None:
        rows = rows.filter(host_id=host.pk)
    rows = choice_param(request, rows, "state", BackupJob.State.values)
    rows = choice_param(request, rows, "kind", BackupJob.Kind.values)
    return JsonResponse(
        paginate(
            request,
            rows,
            encode.job,
            lambda page: encode.with_host_names(page.values(*encode.JOB_FIELDS)),
        )
    )
