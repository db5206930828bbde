from __future__ import annotations

from django.http import HttpRequest, JsonResponse

from pobsync_models.models import SnapshotRecord
from pobsync_web.access import api_require_safe, api_staff_required
from pobsync_web.api import encode
from pobsync_web.api.filters import choice_param, host_param
from pobsync_web.api.pages import paginate


@api_require_safe
@api_staff_required
def snapshot_list(request: HttpRequest) -> JsonResponse:
    """Snapshot records of every state (pruned ones stay as history, state "pruned").

    With ?host= newest name first (the (host, name) index); without it, most recently
    recorded first (the primary key), so neither order needs a sort of the whole table.
    """
    host = host_param(request)
    rows = SnapshotRecord.objects.all()
    if host is not None:
        rows = rows.filter(host_id=host.pk).order_by("-name")
    else:
        rows = rows.order_by("-id")
    rows = choice_param(request, rows, "state", SnapshotRecord.State.values)
    return JsonResponse(
        paginate(
            request,
            rows,
            encode.snapshot,
            lambda page: encode.with_host_names(page.values(*encode.SNAPSHOT_FIELDS)),
        )
    )
