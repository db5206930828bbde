from __future__ import annotations

from typing import Any

from django.http import HttpRequest, JsonResponse
from django.utils import timezone

from pobsync_models.models import BackupJob, BackupRun, Host
from pobsync_web.access import api_require_safe, api_staff_required
from pobsync_web.api import encode
from pobsync_web.api.pages import paginate
from pobsync_web.hostdetail import load_host_detail
from pobsync_web.overview import SUMMARY_FIELDS, host_rows


@api_require_safe
@api_staff_required
def host_list(request: HttpRequest) -> JsonResponse:
    """Hosts by name, each with its health (one page: 3 queries besides the session)."""
    now = timezone.now()
    hosts = Host.objects.only(*SUMMARY_FIELDS).order_by("name")
    body = paginate(request, hosts.values_list("pk", flat=True), lambda pk: pk)
    page = hosts.filter(pk__in=body["results"])
    body["results"] = [encode.host_summary(row) for row in host_rows(page, now)]
    return JsonResponse(body)


def _running(job: BackupJob | None) -> dict[str, Any] | None:
    if job is None:
        return None
    return {
        "id": job.pk,
        "state": job.state,
        "trigger": job.trigger,
        "worker_id": job.worker_id,
        "started_at": encode.iso(job.started_at),
        "lease_expires_at": encode.iso(job.lease_expires_at),
        "run": job.run_id,
        "progress": {
            "percent": job.progress_percent,
            "bytes": job.progress_bytes,
            "files": job.progress_files,
            "updated_at": encode.iso(job.progress_updated_at),
        },
    }


def _run_row(run: BackupRun, host: Host) -> dict[str, Any]:
    row = {f: getattr(run, f) for f in encode.RUN_FIELDS if f != "host_id"}
    return encode.run({**row, "host": host.name})


@api_require_safe
@api_staff_required
def host_detail(request: HttpRequest, name: str) -> JsonResponse:
    """One host: health, resolved configuration, schedules, running job, recent runs."""
    detail = load_host_detail(name, timezone.now())
    host = detail.host
    body = encode.host_summary(detail.row)
    body.update(
        {
            "config": {
                "address": host.address,
                "ssh_user": detail.settings["ssh_user"].value,
                "ssh_port": detail.settings["ssh_port"].value,
                "ssh_key_path": detail.settings["ssh_key_path"].value,
                "inherited": sorted(k for k, s in detail.settings.items() if s.inherited),
                "sources": host.sources,
                "excludes": host.excludes,
                "rsync_options": host.rsync_options,
                "warning_exit_codes": sorted({24, *host.warning_exit_codes}),
                "bwlimit": detail.settings["bwlimit"].value,
                "hooks": {
                    "pre": detail.settings["pre_hook"].value,
                    "post": detail.settings["post_hook"].value,
                    "timeout": detail.settings["hook_timeout"].value,
                    "pre_may_fail": host.pre_may_fail,
                    "remote_pre": host.remote_pre,
                    "remote_post": host.remote_post,
                },
                "dumps": {
                    name: {
                        "command": argv,
                        "file": f"_dumps/{name}{'.gz' if host.dump_compress else ''}",
                    }
                    for name, argv in sorted(host.dumps.items())
                },
                "dumps_may_fail": host.dumps_may_fail,
            },
            "retention": {
                rule: {"keep": s.value, "inherited": s.inherited}
                for rule, s in detail.retention.items()
            },
            "schedules": [
                {
                    "id": s.pk,
                    "kind": s.kind,
                    "cron": s.cron,
                    "timezone": s.timezone,
                    "prune": s.prune,
                    "enabled": s.enabled,
                    "next_run_at": encode.iso(s.next_run_at),
                    "last_scheduled_for": encode.iso(s.last_scheduled_for),
                }
                for s in detail.schedules
            ],
            "running_job": _running(detail.running_job),
            "recent_runs": [_run_row(run, host) for run in detail.recent_runs],
            "snapshot_counts": detail.snapshot_counts,
            "verify_runs": [
                {
                    "id": v.pk,
                    "outcome": v.outcome,
                    "started_at": encode.iso(v.started_at),
                    "finished_at": encode.iso(v.finished_at),
                    "snapshots": v.snapshots,
                    "sample_percent": v.sample_percent,
                    "files_checked": v.files_checked,
                    "files_read": v.files_read,
                    "bytes_read": v.bytes_read,
                    "problems": v.problems,
                    "message": v.message,
                }
                for v in detail.verify_runs
            ],
            "snapshots_url": f"/api/snapshots/?host={host.name}",
            "runs_url": f"/api/runs/?host={host.name}",
        }
    )
    return JsonResponse(body)
