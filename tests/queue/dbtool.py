"""Seed and inspect a database that pobsync processes share, from outside them.

    DATABASE_URL=... python -m tests.queue.dbtool COMMAND '{"json": "args"}'

Process tests run this as a subprocess because their own Django connection belongs to
pytest-django's test database; the processes under test meet at DATABASE_URL.
Prints one JSON document.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import datetime, timedelta
from typing import Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pobsync_models.settings")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.utils import timezone  # noqa: E402

from pobsync_models.models import (  # noqa: E402
    BackupJob,
    BackupRun,
    GlobalConfig,
    Host,
    Schedule,
    SnapshotRecord,
    VerifyRun,
    WorkerProcess,
)


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def _rows(qs, *fields: str) -> list[dict]:
    return [{k: _iso(v) for k, v in row.items()} for row in qs.values(*fields)]


def migrate(args: dict) -> dict:
    call_command("migrate", verbosity=0, interactive=False)
    return {"ok": True}


def reset(args: dict) -> dict:
    Host.objects.update(running_job=None)
    for model in (WorkerProcess, VerifyRun, BackupRun, SnapshotRecord, BackupJob, Schedule, Host):
        model.objects.all().delete()
    GlobalConfig.objects.all().delete()
    from pobsync_models.models import Storage

    Storage.objects.all().delete()
    return {"ok": True}


def seed_jobs(args: dict) -> dict:
    hosts = [
        Host.objects.create(name=f"{args.get('prefix', 'q')}{i}", address="127.0.0.1")
        for i in range(args["hosts"])
    ]
    now = timezone.now() - timedelta(seconds=1)
    jobs = BackupJob.objects.bulk_create(
        BackupJob(host=hosts[i % len(hosts)], run_after=now) for i in range(args["jobs"])
    )
    return {"jobs": [j.pk for j in jobs], "hosts": [h.pk for h in hosts]}


def configure(args: dict) -> dict:
    """Global config + hosts for real-engine tests."""
    from pathlib import Path

    from pobsync_models.models import Storage
    from pobsync_models.storages import default_storage, write_marker

    GlobalConfig(pk=1, **args["config"]).save()
    if Path(args["config"]["backup_root"]).is_dir():  # as configure-global does
        write_marker(default_storage())
    for extra in args.get("storages", []):  # as `pobsync storage add` does
        write_marker(Storage.objects.create(**extra))
    ids = {}
    for host in args["hosts"]:
        host = dict(host)
        if "storage" in host:
            host["storage"] = Storage.objects.get(name=host["storage"])
        ids[host["name"]] = Host.objects.create(address="127.0.0.1", **host).pk
    return ids


def update_host(args: dict) -> dict:
    return {"updated": Host.objects.filter(name=args.pop("name")).update(**args)}


def seed_schedules(args: dict) -> dict:
    first = datetime.fromisoformat(args["next_run_at"])
    for i in range(args["count"]):
        host = Host.objects.create(name=f"s{i}", address="127.0.0.1")
        Schedule.objects.create(host=host, cron=args["cron"], next_run_at=first)
    return {"ok": True}


def enqueue(args: dict) -> dict:
    from pobsync_models.queue import enqueue as queue_enqueue

    kind = args.get("kind", BackupJob.Kind.BACKUP)
    return {"job": queue_enqueue(Host.objects.get(name=args["host"]), kind=kind).pk}


def enqueue_many(args: dict) -> dict:
    """`each` jobs for every host in `hosts`, interleaved host by host."""
    from pobsync_models.queue import enqueue as queue_enqueue

    hosts = [Host.objects.get(name=name) for name in args["hosts"]]
    jobs = [queue_enqueue(h).pk for _ in range(args["each"]) for h in hosts]
    return {"jobs": jobs}


def finish_all(args: dict) -> dict:
    return {"finished": BackupJob.objects.update(state=BackupJob.State.SUCCEEDED)}


def clear_next_run(args: dict) -> dict:
    return {"cleared": Schedule.objects.update(next_run_at=None)}


def steal_lease(args: dict) -> dict:
    """Another worker takes the lease over and keeps it alive (as it would by beating), so
    no reaper requeues the job however slowly the fenced runner is observed."""
    return {
        "updated": BackupJob.objects.filter(pk=args["job"]).update(
            lease_token="stolen", lease_expires_at=timezone.now() + timedelta(hours=1)
        )
    }


def snapshot(args: dict) -> dict:
    return {
        "now": timezone.now().isoformat(),
        "jobs": _rows(
            BackupJob.objects.order_by("id"),
            "id",
            "host_id",
            "kind",
            "state",
            "attempts",
            "worker_id",
            "lease_token",
            "lease_expires_at",
            "schedule_id",
            "scheduled_for",
            "started_at",
            "finished_at",
            "error",
            "cancel_requested",
            "heartbeat_at",
            "created_at",
        ),
        "runs": _rows(
            BackupRun.objects.order_by("id"),
            "id",
            "host_id",
            "job_id",
            "outcome",
            "started_at",
            "finished_at",
            "worker_id",
            "message",
        ),
        "hosts": _rows(Host.objects.order_by("id"), "id", "name", "running_job_id", "lease_token"),
        "workers": _rows(WorkerProcess.objects.all(), "worker_id", "kind", "current_job_id"),
        "snapshots": _rows(
            SnapshotRecord.objects.order_by("id"),
            "host_id",
            "name",
            "state",
            "integrity",
            "verified_at",
            "fully_verified_at",
        ),
        "verify_runs": _rows(
            VerifyRun.objects.order_by("id"),
            "id",
            "host_id",
            "job_id",
            "outcome",
            "started_at",
            "finished_at",
            "files_read",
            "problems",
            "message",
        ),
    }


def explain(args: dict) -> dict:
    from pobsync_models.queue import _candidates_query
    from pobsync_models.storages import claim_scope

    scope = None
    if "storage" in args:  # as a runner serving that one storage claims
        from pobsync_models.models import Storage

        scope = claim_scope({Storage.objects.get(name=args["storage"]).pk})
    query = _candidates_query(20, scope)
    document = json.loads(query.explain(format="json"))
    if isinstance(document, str):  # Django json.dumps()es MySQL's one JSON text column
        document = json.loads(document)
    return {"vendor": connection.vendor, "plan": query.explain(), "json": document}


COMMANDS = {
    f.__name__: f
    for f in (
        enqueue_many,
        migrate,
        reset,
        seed_jobs,
        configure,
        update_host,
        seed_schedules,
        enqueue,
        finish_all,
        clear_next_run,
        steal_lease,
        snapshot,
        explain,
    )
}

if __name__ == "__main__":
    command, raw = sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "{}"
    sys.stdout.write(json.dumps(COMMANDS[command](json.loads(raw))) + "\n")
