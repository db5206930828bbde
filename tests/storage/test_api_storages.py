from __future__ import annotations

import json
from datetime import timedelta

from django.utils import timezone

from pobsync_models.models import Host, Storage, StorageSample
from pobsync_models.storages import Space, record_space, spec_of
from tests.support.factories import make_config, make_host
from tests.web.guards import assert_api_guarded

URL = "/api/storages/"


def test_it_is_staff_only_and_read_only(anon_client, user_client, staff_client):
    assert_api_guarded(URL, anon_client, user_client, staff_client)


def test_it_reports_space_growth_and_days_until_full(staff_client, tmp_path):
    make_config(tmp_path / "root")
    disk = Storage.objects.create(name="disk2", path=str(tmp_path), max_running_jobs=2)
    make_host("a")
    Host.objects.filter(pk=make_host("b", storage=disk).pk).update(disk_used_bytes=5000)
    today = timezone.now().date()
    for days_ago, used in ((10, 1_000_000), (0, 2_000_000)):  # 100,000 bytes a day
        StorageSample.objects.create(
            storage=disk,
            day=today - timedelta(days=days_ago),
            used_bytes=used,
            free_bytes=0,
            used_inodes=0,
            free_inodes=0,
        )
    record_space(spec_of(disk), Space(10_000_000, 8_000_000, 1000, 900))
    body = json.loads(staff_client.get(URL).content)
    rows = {r["name"]: r for r in body["results"]}
    assert set(rows) == {"default", "disk2"}
    d2 = rows["disk2"]
    assert (d2["hosts"], d2["hosts_disk_used_bytes"], d2["max_running_jobs"]) == (1, 5000, 2)
    assert (d2["used_bytes"], d2["free_bytes"]) == (2_000_000, 8_000_000)
    assert (d2["used_inodes"], d2["free_inodes"]) == (100, 900)
    # today's sample was replaced by the measurement: 2,000,000 used, 10 days after 1,000,000
    assert d2["growth_bytes_per_day"] == 100_000
    assert d2["days_until_full"] == 80.0
    assert rows["default"]["default"] is True and rows["default"]["hosts"] == 1


def test_api_jobs_and_the_queue_page_say_why_a_job_waits(staff_client, tmp_path):
    from pobsync_models.models import BackupJob

    make_config(tmp_path / "root")
    disk = Storage.objects.create(name="disk2", path=str(tmp_path))
    job = BackupJob.objects.create(host=make_host("b", storage=disk), run_after=timezone.now())
    body = json.loads(staff_client.get("/api/jobs/").content)
    (row,) = body["results"]
    assert row["id"] == job.pk
    assert row["waiting"] == "waiting: no live runner serves storage disk2"
    page = staff_client.get("/dashboard/queue/").content.decode()
    assert "Waiting for" in page and "waiting: no live runner serves storage disk2" in page
