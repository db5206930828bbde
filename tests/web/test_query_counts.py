"""Every route issues a fixed number of queries, however many hosts, runs and
snapshots there are: pinned here with 10 and with 200 of each per page."""

from __future__ import annotations

import pytest
from django.utils import timezone

from pobsync_models.models import BackupJob, Host
from tests.support.webdata import seed_many

# route -> queries, including the 2 of the session and the user behind staff access.
EXPECTED = {
    "/dashboard/": 16,  # + 2 for the storages table (storages.storage_summaries)
    "/dashboard/hosts/h00003/": 12,
    "/dashboard/queue/": 10,  # + 3 for why queued jobs wait (storages.wait_reasons)
    "/api/": 2,
    "/api/status/": 7,
    "/api/hosts/": 7,
    "/api/hosts/h00003/": 12,
    "/api/snapshots/": 5,
    "/api/snapshots/?host=h00003": 6,
    "/api/runs/": 5,
    "/api/runs/?host=h00003": 6,
    "/api/jobs/": 9,  # + 4 for why queued jobs wait (storages.wait_reasons)
    "/api/jobs/?host=h00003": 6,
    "/metrics": 14,  # + 1 for the hosts' disk use, + 2 for the storages
}


@pytest.mark.parametrize("size", [10, 200])
def test_it_keeps_the_query_count_constant(size, staff_client, django_assert_num_queries, db):
    # 10 or 200 hosts, each with 10 or 200 runs and snapshots; a running job on h00003.
    hosts = seed_many(timezone.now(), hosts=size, runs_per_host=size, snapshots_per_host=size)
    job = BackupJob.objects.create(host=hosts[3], state="running", run_after=timezone.now())
    Host.objects.filter(pk=hosts[3].pk).update(running_job=job)
    staff_client.get("/api/")  # warm the session so every request starts the same way
    for url, expected in EXPECTED.items():
        with django_assert_num_queries(expected):
            response = staff_client.get(url)
        assert response.status_code == 200, url
