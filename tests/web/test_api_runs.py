from __future__ import annotations

import json

from tests.web.guards import assert_api_guarded, assert_json_error

URL = "/api/runs/"


def test_it_is_staff_only_and_read_only(anon_client, user_client, staff_client):
    assert_api_guarded(URL, anon_client, user_client, staff_client)


def test_it_lists_runs_newest_first_with_iso_utc_times(staff_client, demo):
    body = json.loads(staff_client.get(URL).content)
    assert body["count"] == 23
    starts = [r["started_at"] for r in body["results"]]
    assert starts == sorted(starts, reverse=True)
    assert all(s.endswith("Z") and "T" in s for s in starts)
    running = body["results"][0]
    assert running["outcome"] == "running" and running["progress"]["percent"] == 63.0
    assert running["finished_at"] is None and running["duration_seconds"] is None


def test_it_filters_by_host_and_outcome(staff_client, demo):
    body = json.loads(staff_client.get(URL, {"host": "db1", "outcome": "failed"}).content)
    assert body["count"] == 1
    run = body["results"][0]
    assert run["host"] == "db1" and "Connection timed out" in run["log_tail"]
    assert run["progress"] is None
    only_db1 = json.loads(staff_client.get(URL, {"host": "db1"}).content)
    assert {r["host"] for r in only_db1["results"]} == {"db1"} and only_db1["count"] == 4


def test_it_paginates_and_rejects_bad_filters(staff_client, demo):
    page = json.loads(staff_client.get(URL, {"page_size": 10, "page": 3}).content)
    assert len(page["results"]) == 3 and page["next"] is None
    assert page["previous"] == "/api/runs/?page_size=10&page=2"
    assert_json_error(staff_client.get(URL, {"host": "nope"}), 404)
    assert_json_error(staff_client.get(URL, {"outcome": "exploded"}), 400)
