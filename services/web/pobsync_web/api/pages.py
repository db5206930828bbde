"""Page-number pagination for the API lists, with a capped page size.

Shape: {"count", "page", "page_size", "next", "previous", "results"}; next/previous are
relative URLs keeping the other query parameters, or null.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db.models import QuerySet
from django.http import HttpRequest

from pobsync_web.access import ApiError

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200


def _positive_int(request: HttpRequest, name: str, default: int) -> int:
    raw = request.GET.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise ApiError(f"?{name}= must be a whole number of 1 or more, not {raw!r}")
    return int(raw)


def _link(request: HttpRequest, page: int) -> str:
    params = request.GET.copy()
    params["page"] = str(page)
    return f"{request.path}?{params.urlencode()}"


def paginate(
    request: HttpRequest,
    rows: QuerySet,
    encode: Callable[[Any], Any],
    load: Callable[[QuerySet], list[Any]] = list,
) -> dict[str, Any]:
    """One page of `rows` (filtered and ordered, without joins: the count must stay an
    index count), in two queries, count and slice, plus what `load` adds."""
    page = _positive_int(request, "page", 1)
    size = min(_positive_int(request, "page_size", DEFAULT_PAGE_SIZE), MAX_PAGE_SIZE)
    count = rows.count()
    last_page = max(1, -(-count // size))
    if page > last_page:
        raise ApiError(f"page {page} is past the last page ({last_page})", 404)
    start = (page - 1) * size
    return {
        "count": count,
        "page": page,
        "page_size": size,
        "next": _link(request, page + 1) if page < last_page else None,
        "previous": _link(request, page - 1) if page > 1 else None,
        "results": [encode(row) for row in load(rows[start : start + size])],
    }
