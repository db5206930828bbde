"""Migration 0008 turns partials that a later run continued from "pruned" into
"superseded", and leaves what retention deleted "pruned"."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("pobsync_models", "0007_alerts")]
AFTER = [("pobsync_models", "0008_snapshot_superseded")]
T0 = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)


@pytest.mark.django_db(transaction=True)
def test_it_tells_superseded_partials_from_pruned_snapshots():
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    try:
        old = executor.loader.project_state(BEFORE).apps
        host = old.get_model("pobsync_models", "Host").objects.create(
            name="web1", address="127.0.0.1"
        )
        snaps = old.get_model("pobsync_models", "SnapshotRecord").objects

        def snap(name: str, started, state: str, pruned_at=None):
            return snaps.create(
                host=host, name=name, path=f"/b/{name}", state=state, started_at=started,
                pruned_at=pruned_at,
            )  # fmt: skip

        retry = T0 + timedelta(hours=1)
        snap("2026-11-20T020000Z", T0, "pruned", pruned_at=retry)  # seeded the retry
        snap("2026-11-20T030000Z", retry, "complete")
        snap(
            "2026-11-10T020000Z",
            T0 - timedelta(days=10),
            "pruned",
            pruned_at=retry + timedelta(minutes=7),
        )

        executor = MigrationExecutor(connection)
        executor.migrate(AFTER)
        new = executor.loader.project_state(AFTER).apps.get_model(
            "pobsync_models", "SnapshotRecord"
        )
        states = dict(new.objects.values_list("name", "state"))
        assert states == {
            "2026-11-20T020000Z": "superseded",
            "2026-11-20T030000Z": "complete",
            "2026-11-10T020000Z": "pruned",  # retention's: kept as it was
        }
    finally:
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(executor.loader.graph.leaf_nodes())
