from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db.models import Count, Q
from django.http import HttpRequest, JsonResponse
from django.utils import timezone

from pobsync_models.models import Host, Storage, StorageSample
from pobsync_models.storages import GROWTH_DAYS, usage_from_samples
from pobsync_web.access import api_require_safe, api_staff_required
from pobsync_web.api import encode


@api_require_safe
@api_staff_required
def storage_list(request: HttpRequest) -> JsonResponse:
    """Every storage with its space: used/free bytes and inodes as last measured by a
    runner, growth per day over the last 30 days and the projected days until full.
    Four queries whatever the number of storages and samples."""
    storages = list(Storage.objects.order_by("name"))
    since = timezone.now().date() - timedelta(days=GROWTH_DAYS)
    samples: dict[int, list[tuple]] = {s.pk: [] for s in storages}
    for storage_id, day, used in (
        StorageSample.objects.filter(day__gte=since)
        .order_by("storage_id", "day")
        .values_list("storage_id", "day", "used_bytes")
    ):
        samples[storage_id].append((day, used))
    hosts = dict(
        Host.objects.values("storage_id").annotate(n=Count("id")).values_list("storage_id", "n")
    )
    use = dict(
        Host.objects.values("storage_id")
        .annotate(used=_sum("disk_used_bytes"))
        .values_list("storage_id", "used")
    )
    rows = []
    for s in storages:
        usage = usage_from_samples(samples[s.pk], s.free_bytes)
        own = (None,) if s.is_default else ()
        rows.append(
            _row(
                s,
                hosts=sum(hosts.get(k, 0) for k in (s.pk, *own)),
                hosts_used=sum(use.get(k) or 0 for k in (s.pk, *own)),
                growth=usage.growth_per_day,
                days=usage.days_until_full,
            )
        )
    return JsonResponse({"count": len(rows), "results": rows})


def _sum(field: str):
    from django.db.models import Sum

    return Sum(field, filter=Q(**{f"{field}__isnull": False}))


def _row(s: Storage, *, hosts: int, hosts_used: int, growth, days) -> dict[str, Any]:
    def minus(a, b):
        return None if a is None or b is None else a - b

    return {
        "name": s.name,
        "path": s.path,
        "default": bool(s.is_default),
        "max_running_jobs": s.max_running_jobs,
        "min_free_space": s.min_free_space,
        "min_free_inodes": s.min_free_inodes,
        "hosts": hosts,
        "hosts_disk_used_bytes": hosts_used,
        "total_bytes": s.total_bytes,
        "used_bytes": minus(s.total_bytes, s.free_bytes),
        "free_bytes": s.free_bytes,
        "total_inodes": s.total_inodes,
        "used_inodes": minus(s.total_inodes, s.free_inodes),
        "free_inodes": s.free_inodes,
        "measured_at": encode.iso(s.measured_at),
        "growth_bytes_per_day": growth,
        "days_until_full": None if days is None else round(days, 1),
        "unmounted_since": encode.iso(s.unmounted_since),
        "full_since": encode.iso(s.full_since),
    }
