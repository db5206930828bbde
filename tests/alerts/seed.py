"""Seed and read a database that scheduler processes share, from outside them.

    DATABASE_URL=... python -m tests.alerts.seed COMMAND

Prints one JSON document.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import timedelta

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pobsync_models.settings")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.utils import timezone  # noqa: E402

from pobsync_models.models import Delivery, Event, Host, WorkerProcess  # noqa: E402
from tests.support.factories import make_config, make_host, make_run  # noqa: E402


def trouble() -> dict:
    call_command("migrate", verbosity=0, interactive=False)
    make_config()
    now = timezone.now()
    for name in ("h1", "h2"):
        make_run(make_host(name), "failed", started_at=now - timedelta(minutes=10))
    make_host("h3", overdue_after_hours=1)
    Host.objects.filter(name="h3").update(created_at=now - timedelta(hours=2))
    make_run(make_host("h4"), "success", started_at=now - timedelta(hours=1))
    gone = now - timedelta(minutes=10)
    WorkerProcess.objects.create(
        worker_id="box:7:dead", kind="runner", started_at=gone, last_seen_at=gone
    )
    call_command("channel", "add", "ops", "--email", "ops@example.com")
    return {"ok": True}


def recover() -> dict:
    make_run(Host.objects.get(name="h1"), "success", started_at=timezone.now())
    return {"ok": True}


def report() -> dict:
    return {
        "events": sorted(Event.objects.values_list("key", flat=True)),
        "deliveries": sorted(Delivery.objects.values_list("key", "state")),
    }


if __name__ == "__main__":
    print(json.dumps({"trouble": trouble, "recover": recover, "report": report}[sys.argv[1]]()))
