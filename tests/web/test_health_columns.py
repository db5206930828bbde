"""The dashboard and the API judge hosts from Host's run-status columns; they must show
the same health as the per-host subqueries over BackupRun they replaced."""

from __future__ import annotations

import json

from django.db.models import OuterRef, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from pobsync_models.models import BackupRun, Host
from pobsync_models.run_status import FINISHED_OUTCOMES, backfill_run_status
from pobsync_models.status import SUCCESS_OUTCOMES, HostFacts, host_health
from pobsync_web.overview import all_host_rows, enabled_schedules

EXPECTED = {
    "build": "ok",
    "db1": "failing",
    "files": "warning",
    "laptop-anna": "new",
    "mail": "overdue",
    "old-nas": "disabled",
    "web1": "ok",
}


def _from_history(now) -> dict[str, tuple]:
    """name -> (health, last outcome, last run start, last success): the old queries."""

    def newest(**filters):
        return BackupRun.objects.filter(host=OuterRef("pk"), **filters).order_by("-started_at")

    finished = newest(outcome__in=FINISHED_OUTCOMES)
    success = newest(outcome__in=SUCCESS_OUTCOMES).annotate(
        at=Coalesce("finished_at", "started_at")
    )
    hosts = Host.objects.annotate(
        old_outcome=Subquery(finished.values("outcome")[:1]),
        old_run_at=Subquery(finished.values("started_at")[:1]),
        old_success_at=Subquery(success.values("at")[:1]),
    )
    schedules = enabled_schedules([h.pk for h in hosts])
    out = {}
    for h in hosts:
        facts = HostFacts(
            enabled=h.enabled,
            created_at=h.created_at,
            last_outcome=h.old_outcome,
            last_success_at=h.old_success_at,
            schedules=tuple(schedules.get(h.pk, ())),
        )
        health = host_health(facts, now).health
        out[h.name] = (str(health), h.old_outcome, h.old_run_at, h.old_success_at)
    return out


def test_it_shows_the_same_health_as_the_run_history(staff_client, demo):
    now = timezone.now()
    before = _from_history(now)
    assert {name: row[0] for name, row in before.items()} == EXPECTED
    rows = {row.host.name: row for row in all_host_rows(now)}
    assert {name: str(row.health.health) for name, row in rows.items()} == EXPECTED
    body = json.loads(staff_client.get("/api/hosts/").content)
    for host in body["results"]:
        health, outcome, run_at, success_at = before[host["name"]]
        assert host["health"] == health
        assert host["last_outcome"] == outcome
        assert (host["last_run_at"] is None) == (run_at is None)
        assert (host["last_success_at"] is None) == (success_at is None)
    for name, (_health, outcome, run_at, success_at) in before.items():
        host = Host.objects.get(name=name)
        assert (host.last_outcome, host.last_run_at, host.last_success_at) == (
            outcome,
            run_at,
            success_at,
        )


def test_it_backfills_the_demo_to_the_same_columns(demo):
    fields = ("name", "last_run_outcome", "last_run_at", "last_success_at")
    recorded = set(Host.objects.values_list(*fields))
    Host.objects.update(last_run_outcome="", last_run_at=None, last_success_at=None)
    backfill_run_status()
    assert set(Host.objects.values_list(*fields)) == recorded


def test_it_shows_the_health_and_last_message_on_the_dashboard(staff_client, demo):
    response = staff_client.get("/dashboard/")
    rows = {row.host.name: row for row in response.context["page"]}
    assert {name: str(row.health.health) for name, row in rows.items()} == EXPECTED
    # the failed run's message comes from the run recorded as db1's last one
    assert rows["db1"].host.last_message == "rsync exited with code 255 (ssh connection failed)"
    assert rows["laptop-anna"].host.last_message is None
