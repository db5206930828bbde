from __future__ import annotations

import json

from tests.web.guards import assert_api_guarded, assert_json_error

URL = "/api/hosts/"


def test_it_is_staff_only_and_read_only(anon_client, user_client, staff_client):
    assert_api_guarded(URL, anon_client, user_client, staff_client)


def test_it_lists_hosts_by_name_with_their_health(staff_client, demo):
    body = json.loads(staff_client.get(URL).content)
    assert body["count"] == 7 and body["next"] is None and body["previous"] is None
    by_name = {h["name"]: h for h in body["results"]}
    assert list(by_name) == sorted(by_name)
    db1 = by_name["db1"]
    assert db1["health"] == "failing" and db1["failing"] is True
    assert db1["last_outcome"] == "failed"
    assert db1["snapshot_count"] == 3
    assert db1["url"] == "/api/hosts/db1/"
    assert db1["last_success_at"].endswith("Z")
    assert by_name["mail"]["overdue"] is True and by_name["mail"]["health"] == "overdue"
    assert by_name["old-nas"]["health"] == "disabled"
    assert by_name["laptop-anna"]["health"] == "new"
    assert by_name["build"]["running_job"] is not None
    assert by_name["files"]["health"] == "warning"


def test_it_paginates_with_a_capped_page_size(staff_client, demo):
    first = json.loads(staff_client.get(URL, {"page_size": 3}).content)
    assert first["page_size"] == 3 and len(first["results"]) == 3
    assert first["next"] == "/api/hosts/?page_size=3&page=2"
    last = json.loads(staff_client.get(URL, {"page_size": 3, "page": 3}).content)
    assert [h["name"] for h in last["results"]] == ["web1"] and last["next"] is None
    capped = json.loads(staff_client.get(URL, {"page_size": 100000}).content)
    assert capped["page_size"] == 200
    assert_json_error(staff_client.get(URL, {"page": 9}), 404)
    assert_json_error(staff_client.get(URL, {"page": "x"}), 400)
    assert_json_error(staff_client.get(URL, {"page_size": "0"}), 400)
