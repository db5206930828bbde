from __future__ import annotations

from django.http import HttpRequest, JsonResponse

from pobsync_models.models import BackupRun
from pobsync_web.access import api_require_safe, api_staff_required
from pobsync_web.api import encode
from pobsync_web.api.filters import choice_param, host_param
from pobsync_web.api.pages import paginate


@api_require_safe
@api_staff_required
def run_list(request: HttpRequest) -> JsonResponse:
    """Backup runs, newest start first (the started_at indexes, with and without host).

    Ties on started_at are broken by ascending id: the order the descending index
    stores them in, so MariaDB reads the page from the index instead of sorting the
    table (40 ms -> 1 ms at 100,000 runs)."""
    host = host_param(request)
    rows = BackupRun.objects.order_by("-started_at", "id")
    if host is not None:
        rows = rows.filter(host_id=host.pk)
    rows = choice_param(request, rows, "outcome", BackupRun.Outcome.values)
    return JsonResponse(
        paginate(
            request,
            rows,
            encode.run,
            lambda page: encode.with_host_names(page.values(*encode.RUN_FIELDS)),
        )
    )
