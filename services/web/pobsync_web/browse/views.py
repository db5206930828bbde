"""Browse pages (docs/dashboard.md, docs/restore.md): a snapshot's file tree, a file's
history across snapshots, downloads, and the optional restore-to-host form.

Staff only and read-only except the restore form (POST, CSRF-protected, off unless
POBSYNC_WEB_RESTORE, and only with the add_restorerequest permission). Every path
goes through pobsync_models.snapfs: bad or hostile paths are a 404 with one line.
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import content_disposition_header
from django.views.decorators.http import require_POST, require_safe

from pobsync_models import snapfs
from pobsync_models.models import Host, SnapshotRecord
from pobsync_models.restores import RestoreAsk, RestoreError, request_restore
from pobsync_models.retention import snapshot_sort_key
from pobsync_web.access import staff_required
from pobsync_web.browse.download import file_response
from pobsync_web.browse.tarstream import tar_stream

PAGE_SIZE = 200
READABLE = (SnapshotRecord.State.COMPLETE, SnapshotRecord.State.PARTIAL)
RESTORE_PERMISSION = "pobsync_models.add_restorerequest"


def find_snapshot(name: str, snapshot: str) -> tuple[Host, SnapshotRecord]:
    host = Host.objects.filter(name=name).first()
    if host is None:
        raise Http404(f"no host named {name!r}")
    record = host.snapshots.filter(name=snapshot, state__in=READABLE).first()
    if record is None:
        raise Http404(f"host {name} has no snapshot {snapshot!r} on disk")
    return host, record


def path_param(request: HttpRequest, default: str = "/") -> tuple[str, ...]:
    try:
        return snapfs.parse_path(request.GET.get("path", default))
    except snapfs.SnapshotPathError as exc:
        raise Http404(str(exc)) from None


def page_param(request: HttpRequest) -> int:
    raw = request.GET.get("page", "1")
    if not raw.isdigit() or int(raw) < 1:
        raise Http404(f"page {raw!r} is not a page number")
    return int(raw)


def list_page(record: SnapshotRecord, parts: tuple[str, ...], page: int) -> snapfs.Listing:
    """One page of a directory; raises Http404 for anything not a listable directory."""
    try:
        listing = snapfs.list_dir(Path(record.path), parts, (page - 1) * PAGE_SIZE, PAGE_SIZE)
    except snapfs.SnapshotPathError as exc:
        raise Http404(str(exc)) from None
    if page > 1 and not listing.entries:
        raise Http404(f"page {page} is past the last page")
    return listing


def breadcrumbs(parts: tuple[str, ...]) -> list[tuple[str, str]]:
    crumbs = [("/", "/")]
    for i, part in enumerate(parts):
        crumbs.append((part, snapfs.join(parts[: i + 1])))
    return crumbs


def web_restore_allowed(request: HttpRequest) -> bool:
    return bool(settings.POBSYNC_WEB_RESTORE) and request.user.has_perm(RESTORE_PERMISSION)


@require_safe
@staff_required
def tree(request: HttpRequest, name: str, snapshot: str) -> HttpResponse:
    """A directory of a snapshot: directories first, PAGE_SIZE entries a page."""
    host, record = find_snapshot(name, snapshot)
    parts = path_param(request)
    page = page_param(request)
    listing = list_page(record, parts, page)
    pages = max(1, -(-listing.total // PAGE_SIZE))
    here = snapfs.join(parts)
    ctx = {
        "nav": "host",
        "now": timezone.now(),
        "host": host,
        "snapshot": record,
        "path": here,
        "prefix": "" if here == "/" else here,
        "crumbs": breadcrumbs(parts),
        "listing": listing,
        "page": page,
        "pages": pages,
        "previous_page": page - 1 if page > 1 else None,
        "next_page": page + 1 if page < pages else None,
        "can_restore": web_restore_allowed(request),
    }
    return render(request, "pobsync_web/browse.html", ctx)


@require_safe
@staff_required
def history(request: HttpRequest, name: str) -> HttpResponse:
    """The versions of one path across the host's snapshots: one row per change."""
    host = Host.objects.filter(name=name).first()
    if host is None:
        raise Http404(f"no host named {name!r}")
    parts = path_param(request, default="")
    records = list(
        host.snapshots.filter(state=SnapshotRecord.State.COMPLETE).values_list("name", "path")
    )
    records.sort(key=lambda r: snapshot_sort_key(r[0]))
    try:
        found = snapfs.versions([(n, Path(p)) for n, p in records], parts)
    except snapfs.SnapshotPathError as exc:
        raise Http404(str(exc)) from None
    if all(v.entry is None for v in found):
        raise Http404(f"{snapfs.join(parts)} is in none of the complete snapshots")
    ctx = {
        "nav": "host",
        "now": timezone.now(),
        "host": host,
        "path": snapfs.join(parts),
        "crumbs": breadcrumbs(parts),
        "versions": list(reversed(found)),
        "snapshot_count": len(records),
    }
    return render(request, "pobsync_web/history.html", ctx)


@require_safe
@staff_required
def download(request: HttpRequest, name: str, snapshot: str) -> HttpResponse:
    """One regular file, streamed; Range requests honoured. Links are refused."""
    _host, record = find_snapshot(name, snapshot)
    parts = path_param(request, default="")
    try:
        return file_response(request, Path(record.path), parts)
    except snapfs.SnapshotPathError as exc:
        raise Http404(str(exc)) from None


@require_safe
@staff_required
def tar(request: HttpRequest, name: str, snapshot: str) -> HttpResponse:
    """A directory as a tar (?format=tar) or tar.gz (?format=tar.gz) built on the fly."""
    host, record = find_snapshot(name, snapshot)
    parts = path_param(request)
    fmt = request.GET.get("format", "tar")
    if fmt not in ("tar", "tar.gz"):
        raise Http404("format must be tar or tar.gz")
    try:
        stream = tar_stream(Path(record.path), parts, gzip=fmt == "tar.gz")
    except snapfs.SnapshotPathError as exc:
        raise Http404(str(exc)) from None
    response = StreamingHttpResponse(
        stream, content_type="application/gzip" if fmt == "tar.gz" else "application/x-tar"
    )
    leaf = parts[-1] if parts else "root"
    filename = f"{host.name}-{record.name}-{leaf}.{fmt}"
    response["Content-Disposition"] = content_disposition_header(True, filename)
    return response


@require_POST
@staff_required
def restore(request: HttpRequest, name: str, snapshot: str) -> HttpResponse:
    """Queue a restore of one path back to the host it came from."""
    if not settings.POBSYNC_WEB_RESTORE:
        raise PermissionDenied("restoring from the web is off (POBSYNC_WEB_RESTORE)")
    if not request.user.has_perm(RESTORE_PERMISSION):
        raise PermissionDenied("you may not start restores")
    host, record = find_snapshot(name, snapshot)
    ask = RestoreAsk(
        paths=(request.POST.get("path", ""),),
        snapshot=record.name,
        to_host="",
        target_path=request.POST.get("target_path", "").strip(),
        overwrite=request.POST.get("overwrite") == "on",
        dry_run=request.POST.get("dry_run") == "on",
        allow_partial=record.state == SnapshotRecord.State.PARTIAL,
    )
    try:
        job = request_restore(host, ask, f"web:{request.user.get_username()}")
    except RestoreError as exc:
        return render(
            request,
            "pobsync_web/restore_refused.html",
            {"nav": "host", "now": timezone.now(), "host": host, "error": str(exc)},
            status=400,
        )
    return redirect(reverse("dashboard:queue") + f"#job-{job.pk}")
