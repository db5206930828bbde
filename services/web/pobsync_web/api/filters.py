"""Query-string filters shared by the API lists: ?host=<name> and ?<field>=<choice>."""

from __future__ import annotations

from django.db.models import QuerySet
from django.http import Http404, HttpRequest

from pobsync_models.models import Host
from pobsync_web.access import ApiError


def host_param(request: HttpRequest) -> Host | None:
    """The host named by ?host=, None without it; an unknown name is a 404."""
    name = request.GET.get("host")
    if not name:
        return None
    host = Host.objects.filter(name=name).only("id", "name").first()
    if host is None:
        raise Http404(f"no host named {name!r}")
    return host


def choice_param(request: HttpRequest, rows: QuerySet, param: str, choices: list[str]) -> QuerySet:
    """rows filtered by ?<param>=<value>, where value must be one of `choices`."""
    value = request.GET.get(param)
    if not value:
        return rows
    if value not in choices:
        raise ApiError(f"?{param}= must be one of {', '.join(choices)}, not {value!r}")
    return rows.filter(**{param: value})
