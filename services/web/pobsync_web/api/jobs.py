from __future__ import annotations

from django.http import HttpRequest, JsonResponse

from pobsync_models.models import BackupJob, Host
from pobsync_models.storages import wait_reasons
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
    return JsonResponse(paginate(request, rows, _encode, _load))


def _load(page) -> list[dict]:
    """The page's rows with "waiting": why a queued job waits (storages.wait_reasons,
    a fixed number of queries when the page has queued jobs)."""
    rows = list(page.values(*encode.JOB_FIELDS))
    queued = [r for r in rows if r["state"] == BackupJob.State.QUEUED]
    reasons: dict[int, str] = {}
    if queued:
        storage_ids = dict(
            Host.objects.filter(pk__in={r["host_id"] for r in queued}).values_list(
                "pk", "storage_id"
            )
        )
        reasons = wait_reasons((r["id"], storage_ids.get(r["host_id"])) for r in queued)
    out = encode.with_host_names(rows)
    for row in out:
        error = row.get("error") or ""
        waiting = reasons.get(row["id"], "")
        if not waiting and row["state"] == BackupJob.State.QUEUED and error.startswith("waiting: "):
            waiting = error
        row["waiting"] = waiting
    return out


def _encode(row: dict) -> dict:
    return {**encode.job(row), "waiting": row["waiting"]}
