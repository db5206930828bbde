from __future__ import annotations

import json

from tests.web.guards import assert_api_guarded, assert_json_error

URL = "/api/jobs/"


def test_it_is_staff_only_and_read_only(anon_client, user_client, staff_client):
    assert_api_guarded(URL, anon_client, user_client, staff_client)


def test_it_lists_jobs_newest_first(staff_client, demo):
    body = json.loads(staff_client.get(URL).content)
    assert body["count"] == 7
    ids = [j["id"] for j in body["results"]]
    assert ids == sorted(ids, reverse=True)
    failed = next(j for j in body["results"] if j["state"] == "failed")
    assert failed["host"] == "db1" and "ssh connection failed" in failed["error"]
    scheduled = next(j for j in body["results"] if j["schedule"] is not None)
    assert scheduled["scheduled_for"].endswith("Z") and scheduled["trigger"] == "schedule"


def test_it_filters_by_state_and_host(staff_client, demo):
    queued = json.loads(staff_client.get(URL, {"state": "queued"}).content)
    assert sorted(j["host"] for j in queued["results"]) == ["files", "mail", "web1"]
    running = json.loads(staff_client.get(URL, {"state": "running", "host": "build"}).content)
    assert running["count"] == 1 and running["results"][0]["worker_id"] == "backup01:4242"
    mail = json.loads(staff_client.get(URL, {"host": "mail"}).content)
    assert {j["host"] for j in mail["results"]} == {"mail"} and mail["count"] == 2


def test_it_paginates_and_rejects_bad_filters(staff_client, demo):
    body = json.loads(staff_client.get(URL, {"page_size": 2}).content)
    assert len(body["results"]) == 2 and body["next"] == "/api/jobs/?page_size=2&page=2"
    assert_json_error(staff_client.get(URL, {"host": "nope"}), 404)
    assert_json_error(staff_client.get(URL, {"state": "stuck"}), 400)
