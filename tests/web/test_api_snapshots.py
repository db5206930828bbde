from __future__ import annotations

import json

from tests.web.guards import assert_api_guarded, assert_json_error

URL = "/api/snapshots/"


def test_it_is_staff_only_and_read_only(anon_client, user_client, staff_client):
    assert_api_guarded(URL, anon_client, user_client, staff_client)


def test_it_filters_by_host_newest_first_and_keeps_pruned_ones_as_history(staff_client, demo):
    body = json.loads(staff_client.get(URL, {"host": "web1"}).content)
    names = [s["name"] for s in body["results"]]
    assert names == sorted(names, reverse=True)
    assert {s["host"] for s in body["results"]} == {"web1"}
    states = [s["state"] for s in body["results"]]
    assert states.count("complete") == 6 and states.count("pruned") == 1
    pruned = next(s for s in body["results"] if s["state"] == "pruned")
    assert pruned["pruned_at"].endswith("Z")
    complete = json.loads(staff_client.get(URL, {"host": "web1", "state": "complete"}).content)
    assert complete["count"] == 6
    assert pruned["name"] not in [s["name"] for s in complete["results"]]
    newest = body["results"][0]
    assert newest["base_name"] == body["results"][1]["name"]


def test_it_lists_all_hosts_and_paginates(staff_client, demo):
    body = json.loads(staff_client.get(URL, {"page_size": 5}).content)
    assert body["count"] == 22 and len(body["results"]) == 5
    ids = [s["id"] for s in body["results"]]
    assert ids == sorted(ids, reverse=True)
    second = json.loads(staff_client.get(body["next"]).content)
    assert second["page"] == 2 and second["results"][0]["id"] < ids[-1]


def test_it_rejects_unknown_hosts_and_states(staff_client, demo):
    assert_json_error(staff_client.get(URL, {"host": "nope"}), 404)
    body = assert_json_error(staff_client.get(URL, {"state": "gone"}), 400)
    assert "complete" in body["error"]
