from __future__ import annotations

from pytest_django.asserts import assertContains

from tests.web.guards import assert_page_guarded

URL = "/dashboard/queue/"


def test_it_is_staff_only_and_read_only(anon_client, user_client, staff_client):
    assert_page_guarded(URL, anon_client, user_client, staff_client)


def test_it_lists_running_jobs_then_queued_ones_in_claim_order(staff_client, demo):
    response = staff_client.get(URL)
    assert [j.host.name for j in response.context["running"]] == ["build"]
    queued = [(j.priority, j.host.name) for j in response.context["queued"]]
    assert queued == [(0, "mail"), (0, "files"), (5, "web1")]
    assertContains(response, "63%")
    assertContains(response, '<span class="badge b-due">due</span>', count=2)


def test_it_shows_finished_jobs_with_their_errors(staff_client, demo):
    response = staff_client.get(URL)
    assert response.context["finished"][0].state == "succeeded"
    assertContains(response, "rsync exited with code 255 (ssh connection failed)")


def test_it_says_so_when_the_queue_is_empty(staff_client):
    response = staff_client.get(URL)
    assertContains(response, "The queue is empty.")
    assertContains(response, "Nothing is running.")
