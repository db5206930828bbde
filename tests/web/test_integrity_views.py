"""Snapshot integrity on the dashboard's attention bar, the host page and the API."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from pytest_django.asserts import assertContains, assertNotContains

from pobsync_models.models import Host, SnapshotRecord, VerifyRun
from tests.support.factories import make_host, make_snapshot

Integrity = SnapshotRecord.Integrity


def seed(db):
    now = timezone.now()
    host = make_host("web1")
    clean = make_snapshot(
        host,
        now - timedelta(days=2),
        integrity=Integrity.VERIFIED,
        verified_at=now - timedelta(hours=3),
    )
    bad = make_snapshot(
        host,
        now - timedelta(days=1),
        integrity=Integrity.CORRUPT,
        verified_at=now - timedelta(hours=3),
        corrupt_files=2,
        corrupt_paths=["srv/db/<precious>.db", "srv/db/other"],
    )
    fresh = make_snapshot(host, now - timedelta(hours=1))
    return clean, bad, fresh


def test_the_attention_bar_flags_corrupt_snapshots(staff_client, db):
    seed(db)
    response = staff_client.get("/dashboard/")
    assert response.context["snapshots"]["corrupt"] == 1
    assertContains(response, 'id="corrupt-snapshots">corrupt</span> 1 snapshot ')
    assertContains(response, "Needs attention")


def test_the_attention_bar_stays_quiet_when_nothing_is_corrupt(staff_client, db):
    clean, bad, _ = seed(db)
    SnapshotRecord.objects.filter(pk=bad.pk).update(integrity=Integrity.VERIFIED)
    response = staff_client.get("/dashboard/")
    assertNotContains(response, 'id="corrupt-snapshots"')


def test_the_host_page_shows_each_snapshots_state_and_when_it_was_verified(staff_client, db):
    clean, bad, fresh = seed(db)
    response = staff_client.get("/dashboard/hosts/web1/")
    assertContains(response, '<span class="badge b-verified">verified</span>')
    assertContains(response, '<span class="badge b-corrupt">corrupt</span>')
    assertContains(response, '<span class="badge b-unverified">unverified</span>')
    assert response.content.decode().count("verified <time") == 2
    assertContains(response, "2 damaged:")
    assertContains(response, "srv/db/&lt;precious&gt;.db")  # escaped, never raw


def test_the_host_page_and_its_json_list_the_verify_runs(staff_client, db):
    seed(db)
    host = Host.objects.get(name="web1")
    VerifyRun.objects.create(
        host=host,
        started_at=timezone.now() - timedelta(hours=2),
        finished_at=timezone.now() - timedelta(hours=2),
        outcome=VerifyRun.Outcome.PROBLEMS,
        snapshots=3,
        files_checked=60,
        files_read=21,
        bytes_read=5_000_000,
        problems=1,
        message="3 snapshots, 60 files checked, 21 read (5.0 MB) in 1.0 s; 1 problems",
    )
    response = staff_client.get("/dashboard/hosts/web1/")
    assertContains(response, '<span class="badge b-problems">problems</span>')
    assertContains(response, "60 files checked, 21 read")
    body = staff_client.get("/api/hosts/web1/").json()
    (run,) = body["verify_runs"]
    assert (run["outcome"], run["files_read"], run["problems"]) == ("problems", 21, 1)


def test_a_never_verified_host_says_how_to_verify_it(staff_client, db):
    make_host("web2")
    response = staff_client.get("/dashboard/hosts/web2/")
    assertContains(response, "Never verified.")
    assert staff_client.get("/api/hosts/web2/").json()["verify_runs"] == []


def test_the_api_carries_integrity_and_last_verification(staff_client, db):
    clean, bad, fresh = seed(db)
    body = staff_client.get("/api/snapshots/?host=web1").json()
    by_name = {row["name"]: row for row in body["results"]}
    assert by_name[bad.name]["integrity"] == "corrupt"
    assert by_name[bad.name]["corrupt_files"] == 2
    assert by_name[clean.name]["integrity"] == "verified"
    expected = clean.verified_at.isoformat(timespec="seconds").replace("+00:00", "Z")
    assert by_name[clean.name]["verified_at"] == expected
    assert by_name[fresh.name]["integrity"] == "unverified"
    assert by_name[fresh.name]["verified_at"] is None
