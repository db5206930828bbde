from __future__ import annotations

import json

from tests.web.guards import assert_api_guarded, assert_json_error

URL = "/api/"


def test_it_is_staff_only_and_read_only(anon_client, user_client, staff_client):
    assert_api_guarded(URL, anon_client, user_client, staff_client)


def test_it_names_every_endpoint(staff_client):
    body = json.loads(staff_client.get(URL).content)
    urls = {e["url"] for e in body["endpoints"].values()}
    assert urls == {
        "/api/status/",
        "/api/hosts/",
        "/api/snapshots/",
        "/api/runs/",
        "/api/jobs/",
        "/api/restores/",
        "/api/storages/",
        "/metrics",
    }
    assert body["host_detail"] == "/api/hosts/<name>/"
    assert body["snapshot_files"] == "/api/hosts/<name>/snapshots/<snapshot>/files/?path=/"
    assert body["restore_detail"] == "/api/restores/<id>/"
    for url in urls:
        assert staff_client.get(url).status_code == 200


def test_it_answers_unknown_api_paths_with_json(staff_client, anon_client):
    assert_json_error(staff_client.get("/api/nope/"), 404)
    assert_json_error(anon_client.get("/api/nope/"), 404)
