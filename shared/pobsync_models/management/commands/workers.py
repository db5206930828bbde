from __future__ import annotations

from typing import Any

from django.utils import timezone

from pobsync_models.commandbase import GROUP_QUEUE, PobsyncCommand, format_table
from pobsync_models.models import WorkerProcess
from pobsync_models.registry import DEFAULT_MAX_AGE, age_text


class Command(PobsyncCommand):
    help = "List the scheduler and runner processes that have checked in, with their age."
    cli_name = "workers"
    cli_group = GROUP_QUEUE

    def handle(self, *args: Any, **opts: Any) -> None:
        now = timezone.now()
        rows = []
        for w in WorkerProcess.objects.select_related("current_job__host"):
            seen = (now - w.last_seen_at).total_seconds()
            job = w.current_job
            rows.append(
                (
                    w.worker_id,
                    w.kind,
                    w.version,
                    age_text((now - w.started_at).total_seconds()),
                    age_text(seen) + " ago" + (" (stale)" if seen > DEFAULT_MAX_AGE else ""),
                    f"{job.pk} ({job.host.name})" if job else "",
                    ", ".join(w.storages or []) if w.kind == WorkerProcess.Kind.RUNNER else "",
                )
            )
        if not rows:
            self.stdout.write("no scheduler or runner has checked in")
            return
        self.stdout.write(
            format_table(("worker", "kind", "version", "up", "last seen", "job", "storages"), rows)
        )
