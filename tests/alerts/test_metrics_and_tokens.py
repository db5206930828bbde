"""/metrics parsed with prometheus-client's own parser and checked against the
database; API tokens: good, wrong, revoked, anonymous, and never a write."""

from __future__ import annotations

import json
import os
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from pobsync_models.alerts import tokens
from pobsync_models.models import (
    ApiToken,
    BackupJob,
    BackupRun,
    Host,
    Storage,
    StorageSample,
    WorkerProcess,
)
from tests.support.factories import make_config, make_host, make_job, make_run, make_snapshot


def _samples(text: str) -> dict[tuple[str, tuple], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


@pytest.fixture
def world(db, tmp_path):
    make_config(tmp_path)
    now = timezone.now()
    good, bad, new = make_host("good"), make_host("bad"), make_host("new", enabled=False)
    ok_run = make_run(
        good,
        "success",
        started_at=now - timedelta(hours=2),
        finished_at=now - timedelta(hours=2) + timedelta(seconds=90),
        bytes_transferred=12345,
        files_transferred=17,
    )
    make_run(bad, "success", started_at=now - timedelta(days=5))
    make_run(bad, "failed", started_at=now - timedelta(hours=1), message="boom")
    for days in (1, 2, 3):
        make_snapshot(good, now - timedelta(days=days))
    make_snapshot(good, now, state="partial")
    make_job(good)
    make_job(bad, created_at=now)  # auto_now_add ignores it; created now anyway
    running = make_job(new, state=BackupJob.State.RUNNING)
    WorkerProcess.objects.create(
        worker_id="box:1:aa",
        kind="runner",
        started_at=now,
        last_seen_at=now - timedelta(seconds=30),
    )
    WorkerProcess.objects.create(
        worker_id="box:2:bb", kind="scheduler", started_at=now, last_seen_at=now
    )
    return {"now": now, "ok_run": ok_run, "running": running, "root": tmp_path}


def test_it_exposes_valid_prometheus_text_that_matches_the_database(staff_client, world):
    response = staff_client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    s = _samples(response.content.decode())
    good = Host.objects.get(name="good")
    assert s[("pobsync_host_last_success_timestamp_seconds", (("host", "good"),))] == (
        pytest.approx(good.last_success_at.timestamp())
    )
    assert s[("pobsync_host_last_run_outcome", (("host", "bad"), ("outcome", "failed")))] == 1
    assert s[("pobsync_host_last_run_outcome", (("host", "good"), ("outcome", "success")))] == 1
    assert s[("pobsync_host_last_run_duration_seconds", (("host", "good"),))] == 90
    assert s[("pobsync_host_last_run_transferred_bytes", (("host", "good"),))] == 12345
    assert s[("pobsync_host_last_run_transferred_files", (("host", "good"),))] == 17
    assert s[("pobsync_host_snapshots", (("host", "good"),))] == 3  # complete ones only
    assert s[("pobsync_host_failing", (("host", "bad"),))] == 1
    assert s[("pobsync_host_failing", (("host", "good"),))] == 0
    assert s[("pobsync_host_overdue", (("host", "bad"),))] == 1  # no success for 5 days
    assert s[("pobsync_host_overdue", (("host", "new"),))] == 0  # disabled: never overdue
    for state in BackupJob.State.values:
        assert s[("pobsync_queue_jobs", (("state", state),))] == (
            BackupJob.objects.filter(state=state).count()
        )
    assert s[("pobsync_running_jobs", ())] == 1
    assert 0 <= s[("pobsync_queue_oldest_queued_age_seconds", ())] < 120
    assert (
        29
        <= s[
            ("pobsync_process_heartbeat_age_seconds", (("kind", "runner"), ("worker", "box:1:aa")))
        ]
        < 120
    )
    assert s[("pobsync_scheduler_heartbeat_age_seconds", ())] < 60
    stat = os.statvfs(world["root"])
    assert s[("pobsync_backup_root_free_bytes", ())] == pytest.approx(
        stat.f_bavail * stat.f_frsize, rel=0.01
    )
    assert s[("pobsync_backup_root_free_inodes", ())] == pytest.approx(stat.f_favail, rel=0.01)
    # Bounded labels: host names, outcomes, states, process ids; never a path or snapshot.
    labels = {k for _, pairs in s for k, _ in pairs}
    assert labels <= {"host", "outcome", "state", "kind", "worker", "storage"}
    assert str(world["root"]) not in response.content.decode()


def test_it_exposes_each_storage_and_each_hosts_real_disk_use(staff_client, world):
    day = world["now"].date()
    default = Storage.objects.get(name="default")
    Storage.objects.filter(pk=default.pk).update(
        total_bytes=1000, free_bytes=400, total_inodes=50, free_inodes=20
    )
    for ago, used in ((10, 100), (0, 600)):  # 50 bytes a day over 10 days
        StorageSample.objects.create(
            storage=default,
            day=day - timedelta(days=ago),
            used_bytes=used,
            free_bytes=400,
            used_inodes=30,
            free_inodes=20,
        )
    Host.objects.filter(name="good").update(disk_used_bytes=4242)
    s = _samples(staff_client.get("/metrics").content.decode())
    storage = (("storage", "default"),)
    assert s[("pobsync_storage_free_bytes", storage)] == 400
    assert s[("pobsync_storage_used_bytes", storage)] == 600
    assert s[("pobsync_storage_free_inodes", storage)] == 20
    assert s[("pobsync_storage_used_inodes", storage)] == 30
    assert s[("pobsync_storage_growth_bytes_per_day", storage)] == 50
    assert s[("pobsync_storage_days_until_full", storage)] == 8  # 400 free / 50 a day
    assert s[("pobsync_host_disk_used_bytes", (("host", "good"),))] == 4242
    assert ("pobsync_host_disk_used_bytes", (("host", "bad"),)) not in s  # never scanned


def test_its_query_count_does_not_grow_with_hosts(
    staff_client, world, django_assert_max_num_queries
):
    staff_client.get("/metrics")
    with django_assert_max_num_queries(14):
        staff_client.get("/metrics")
    for i in range(30):
        make_run(make_host(f"more{i}"), "failed")
    with django_assert_max_num_queries(14):
        staff_client.get("/metrics")


def test_tokens_good_wrong_revoked_and_anonymous(client, world):
    _, token = tokens.create("prometheus")
    assert client.get("/metrics").status_code == 401
    assert json.loads(client.get("/api/hosts/").content)["error"]
    good = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    assert client.get("/metrics", **good).status_code == 200
    assert client.get("/api/hosts/", **good).status_code == 200
    assert client.get("/api/status/", **good).status_code == 200
    row = ApiToken.objects.get()
    assert row.last_used_at is not None and row.digest != token and token not in row.prefix * 2
    wrong = {"HTTP_AUTHORIZATION": f"Bearer {token[:-2]}xx"}
    assert client.get("/metrics", **wrong).status_code == 401
    assert client.get("/api/hosts/", **wrong).status_code == 401
    assert client.get("/api/", HTTP_AUTHORIZATION="Bearer nope").status_code == 401
    call_command("token", "revoke", "prometheus")
    assert client.get("/metrics", **good).status_code == 401
    assert client.get("/api/hosts/", **good).status_code == 401


def test_a_token_never_authorises_a_write_or_a_page(client, world):
    _, token = tokens.create("ci")
    auth = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    host = Host.objects.get(name="good")
    assert client.post("/api/hosts/", {"name": "x"}, **auth).status_code == 405
    assert client.delete("/api/hosts/good/", **auth).status_code == 405
    assert client.post("/metrics", **auth).status_code == 405
    # The admin and the dashboard are session-only: a token is a stranger there.
    response = client.post(
        f"/admin/pobsync_models/host/{host.pk}/change/", {"address": "evil"}, **auth
    )
    assert response.status_code in (302, 403)
    assert client.get("/dashboard/", **auth).status_code == 302
    assert client.get("/admin/", **auth).status_code == 302
    host.refresh_from_db()
    assert host.address == "127.0.0.1"
    assert Host.objects.count() == 3 and BackupRun.objects.count() == 3


def test_the_token_command_prints_a_token_once_and_lists_without_it(db, capsys):
    call_command("token", "create", "grafana")
    token = capsys.readouterr().out.strip()
    assert token.startswith("pbs_") and len(token) > 40
    call_command("token", "list")
    listing = capsys.readouterr().out
    assert "grafana" in listing and token not in listing and "active" in listing
    with pytest.raises(CommandError, match="exists"):
        call_command("token", "create", "grafana")
    with pytest.raises(CommandError, match="no active token"):
        call_command("token", "revoke", "nope")
    with pytest.raises(CommandError, match="name 'bad name'"):
        call_command("token", "create", "bad name")
    call_command("token", "revoke", "grafana")
    call_command("token", "list")
    assert "revoked" in capsys.readouterr().out
