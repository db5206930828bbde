from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from pobsync_models.models import Host, SnapshotRecord, Storage, StorageSample
from pobsync_models.storages import Space, record_space, spec_of
from tests.support.factories import make_config, make_host, make_snapshot


def test_the_dashboard_shows_each_storage_with_growth_and_state(staff_client, tmp_path):
    make_config(tmp_path / "root")
    disk = Storage.objects.create(name="disk2", path="/mnt/disk2")
    Storage.objects.filter(name="default").update(unmounted_since=timezone.now())
    today = timezone.now().date()
    StorageSample.objects.create(
        storage=disk, day=today - timedelta(days=4), used_bytes=0, free_bytes=0,
        used_inodes=0, free_inodes=0,
    )  # fmt: skip
    record_space(spec_of(disk), Space(100 * 2**30, 60 * 2**30, 10**6, 9 * 10**5))
    page = staff_client.get("/dashboard/")
    body = page.content.decode()
    assert page.status_code == 200
    assert 'id="storages"' in body and "/mnt/disk2" in body
    assert "40.0 GiB" in body and "60.0 GiB" in body  # used, free
    assert "10.0 GiB" in body  # growth per day: 40 GiB in 4 days
    assert "6 days" in body  # until full
    assert "not mounted" in body  # the default storage's open incident


def test_the_host_page_shows_real_use_and_what_each_snapshot_frees(staff_client):
    host = make_host("web1")
    Host.objects.filter(pk=host.pk).update(disk_used_bytes=3 * 2**20)
    snap = make_snapshot(host, timezone.now() - timedelta(days=1))
    SnapshotRecord.objects.filter(pk=snap.pk).update(added_bytes=2 * 2**20, exclusive_bytes=2**20)
    body = staff_client.get("/dashboard/hosts/web1/").content.decode()
    assert "real disk use 3.0 MiB" in body
    assert ">Frees</th>" in body and "2.0 MiB" in body and "1.0 MiB" in body
