from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pytest_django.asserts import assertContains, assertNotContains

from tests.support.factories import make_host, make_snapshot
from tests.web.guards import assert_page_guarded

URL = "/dashboard/"


def test_it_is_staff_only_and_read_only(anon_client, user_client, staff_client):
    assert_page_guarded(URL, anon_client, user_client, staff_client)


def test_it_puts_failing_and_overdue_hosts_first(staff_client, demo):
    response = staff_client.get(URL)
    rows = [row.host.name for row in response.context["page"]]
    assert rows[:2] == ["db1", "mail"]
    assert rows[-1] == "old-nas"
    assertContains(response, '<span class="badge b-failing">failing</span>')
    assertContains(response, '<span class="badge b-overdue">overdue</span>')
    assertContains(response, "rsync exited with code 255 (ssh connection failed)")


def test_it_summarises_hosts_runs_snapshots_queue_and_processes(staff_client, demo):
    response = staff_client.get(URL)
    ctx = response.context
    assert (ctx["hosts"].total, ctx["hosts"].failing, ctx["hosts"].overdue) == (7, 1, 1)
    assert ctx["runs_24h"]["failed"] == 1 and ctx["runs_24h"]["warning"] == 1
    assert ctx["snapshots"] == {
        "complete": 20,
        "partial": 1,
        "pruned": 1,
        "superseded": 0,
        "missing": 0,
        "corrupt": 0,
    }
    assert (ctx["queue"].queued, ctx["queue"].running) == (3, 1)
    assertContains(response, "63%")  # the running backup's progress
    assertContains(response, 'id="auto-refresh"')
    assertContains(response, 'href="/admin/"')  # and the admin's "View site" comes back


def test_it_shows_ages_with_the_exact_utc_time_on_hover(staff_client, demo):
    response = staff_client.get(URL)
    assertContains(response, "h ago</time>")
    assertContains(response, ' UTC">')


def test_it_pages_the_host_table_past_a_hundred_hosts(staff_client, db):
    for i in range(105):
        make_host(f"bulk{i:03d}")
    first = staff_client.get(URL)
    assertContains(first, "page 1 of 2")
    assertNotContains(first, ">bulk104<")
    assertContains(staff_client.get(URL, {"page": 2}), ">bulk104<")


def test_it_explains_what_to_do_without_hosts(staff_client):
    assertContains(staff_client.get(URL), "pobsync configure-host")


def test_the_admin_links_to_the_dashboard(staff_client):
    assertContains(staff_client.get("/admin/"), 'href="/dashboard/"')


def test_the_site_root_leads_to_the_dashboard(anon_client):
    response = anon_client.get("/")
    assert response.status_code == 302 and response["Location"] == URL


def test_it_counts_partials_a_later_run_continued_apart_from_retention_deletes(staff_client):
    web = make_host("web1")
    t0 = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)
    for hours in range(5):  # five interrupted tries, each continued by the next run
        make_snapshot(web, t0 + timedelta(hours=hours), state="superseded")
    for days in (10, 11):
        make_snapshot(web, t0 - timedelta(days=days), state="pruned", pruned_at=t0)
    response = staff_client.get(URL)
    assert response.context["snapshots"]["pruned"] == 2
    assert response.context["snapshots"]["superseded"] == 5
    assertContains(response, "<dt>pruned by retention</dt><dd>2</dd>", html=False)
    assertContains(response, "<dt>continued by a later run</dt><dd>5</dd>", html=False)
    assertNotContains(response, "pruned (history)")
    host_page = staff_client.get("/dashboard/hosts/web1/")
    assertContains(host_page, "2 pruned by retention, 5 partials continued by a later run")
    assertContains(host_page, '<span class="badge b-superseded">continued later</span>')
