"""Migration 0003 adds Host's run-status columns and backfills them from BackupRun."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("pobsync_models", "0002_web_snapshot_state_idx")]
AFTER = [("pobsync_models", "0003_host_last_run")]
T0 = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)


@pytest.mark.django_db(transaction=True)
def test_it_backfills_existing_runs():
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    try:
        old = executor.loader.project_state(BEFORE).apps
        host_model, run_model = (
            old.get_model("pobsync_models", "Host"),
            old.get_model("pobsync_models", "BackupRun"),
        )
        web = host_model.objects.create(name="web1", address="127.0.0.1")
        host_model.objects.create(name="idle", address="127.0.0.1")
        for hours, outcome in ((0, "success"), (24, "warning"), (48, "failed"), (49, "running")):
            started = T0 + timedelta(hours=hours)
            finished = None if outcome == "running" else started + timedelta(minutes=5)
            run_model.objects.create(
                host=web, outcome=outcome, started_at=started, finished_at=finished
            )

        executor = MigrationExecutor(connection)
        executor.migrate(AFTER)
        new = executor.loader.project_state(AFTER).apps.get_model("pobsync_models", "Host")
        fields = ("last_run_outcome", "last_run_at", "last_success_at")
        assert new.objects.values_list(*fields).get(name="web1") == (
            "failed",
            T0 + timedelta(hours=48),
            T0 + timedelta(hours=24, minutes=5),
        )
        assert new.objects.values_list(*fields).get(name="idle") == ("", None, None)
    finally:
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(executor.loader.graph.leaf_nodes())
