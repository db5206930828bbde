"""The restore records (/api/restores/) and a snapshot's file listing
(/api/hosts/<name>/snapshots/<snapshot>/files/), documented in docs/api.md."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.http import Http404, HttpRequest, JsonResponse

from pobsync_models.models import RestoreRequest
from pobsync_models.snapfs import Entry
from pobsync_web.access import ApiError, api_require_safe, api_staff_required
from pobsync_web.api import encode
from pobsync_web.api.filters import host_param
from pobsync_web.api.pages import paginate
from pobsync_web.browse.views import PAGE_SIZE, find_snapshot, list_page, path_param
from pobsync_web.templatetags.pobsync import shown

RESTORE_FIELDS = (
    "id",
    "host_id",
    "snapshot_name",
    "paths",
    "target",
    "target_dir",
    "target_host__name",
    "target_path",
    "overwrite",
    "dry_run",
    "allow_partial",
    "requested_by",
    "outcome",
    "created_at",
    "started_at",
    "finished_at",
    "rsync_exit_code",
    "files_total",
    "files_transferred",
    "bytes_total",
    "bytes_transferred",
    "message",
    "log_tail",
    "changes",
    "worker_id",
    "job__id",
    "job__state",
)
_TIMES = ("created_at", "started_at", "finished_at")
_RENAMED = {"target_host__name": "target_host", "job__id": "job", "job__state": "job_state"}


def restore(row: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"id": row["id"], "host": row["host"]}
    for key in RESTORE_FIELDS[2:]:
        value = row[key]
        out[_RENAMED.get(key, key)] = encode.iso(value) if key in _TIMES else value
    # A job that ended without its executor (cancelled while queued) decides it.
    out["outcome"] = RestoreRequest(outcome=row["outcome"]).outcome_with(row["job__state"])
    out["duration_seconds"] = encode.seconds_between(row["started_at"], row["finished_at"])
    return out


def _load(rows) -> list[dict[str, Any]]:
    return encode.with_host_names(rows.values(*RESTORE_FIELDS))


@api_require_safe
@api_staff_required
def restore_list(request: HttpRequest) -> JsonResponse:
    """Every restore, newest first; ?host= for one host's."""
    host = host_param(request)
    rows = RestoreRequest.objects.order_by("-id")
    if host is not None:
        rows = rows.filter(host_id=host.pk)
    return JsonResponse(paginate(request, rows, restore, _load))


@api_require_safe
@api_staff_required
def restore_detail(request: HttpRequest, pk: int) -> JsonResponse:
    rows = _load(RestoreRequest.objects.filter(pk=pk))
    if not rows:
        raise Http404(f"no restore {pk}")
    return JsonResponse(restore(rows[0]))


def file_entry(entry: Entry, parent: str) -> dict[str, Any]:
    return {
        "name": shown(entry.name),
        "path": shown(f"{parent.rstrip('/')}/{entry.name}"),
        "type": entry.kind,
        "size": entry.size,
        "mode": entry.mode_text,
        "mode_octal": f"{entry.mode:04o}",
        "uid": entry.uid,
        "gid": entry.gid,
        "mtime": encode.iso(datetime.fromtimestamp(entry.mtime, UTC)),
        "link_target": shown(entry.target) if entry.target is not None else None,
    }


@api_require_safe
@api_staff_required
def file_list(request: HttpRequest, name: str, snapshot: str) -> JsonResponse:
    """One directory of a snapshot, directories first, PAGE_SIZE entries a page.
    Symlinks are listed as links and never followed."""
    _host, record = find_snapshot(name, snapshot)
    parts = path_param(request)
    raw = request.GET.get("page", "1")
    if not raw.isdigit() or int(raw) < 1:
        raise ApiError(f"?page= must be a whole number of 1 or more, not {raw!r}")
    page = int(raw)
    listing = list_page(record, parts, page)
    here = "/" + "/".join(parts)
    pages = max(1, -(-listing.total // PAGE_SIZE))
    base = f"{request.path}?path="

    def link(n: int) -> str:
        from urllib.parse import quote

        return f"{base}{quote(here.encode('utf-8', 'surrogateescape'), safe='/')}&page={n}"

    return JsonResponse(
        {
            "host": name,
            "snapshot": record.name,
            "path": shown(here),
            "count": listing.total,
            "page": page,
            "page_size": PAGE_SIZE,
            "next": link(page + 1) if page < pages else None,
            "previous": link(page - 1) if page > 1 else None,
            "results": [file_entry(e, here) for e in listing.entries],
        }
    )
