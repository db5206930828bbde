from __future__ import annotations

import json

from tests.web.guards import assert_api_guarded, assert_json_error


def test_it_is_staff_only_and_read_only(anon_client, user_client, staff_client, demo):
    assert_api_guarded("/api/hosts/db1/", anon_client, user_client, staff_client)


def test_it_shows_config_schedules_runs_and_the_error_tail(staff_client, demo):
    body = json.loads(staff_client.get("/api/hosts/db1/").content)
    assert body["name"] == "db1" and body["health"] == "failing"
    assert body["config"]["address"] == "db1.example.internal"
    assert body["config"]["sources"] == ["/var/lib/mysql-backup", "/etc"]
    assert body["config"]["ssh_user"] == "root" and "ssh_user" in body["config"]["inherited"]
    assert body["retention"]["daily"] == {"keep": 7, "inherited": True}
    assert [s["cron"] for s in body["schedules"]] == ["30 1 * * *"]
    newest = body["recent_runs"][0]
    assert newest["outcome"] == "failed" and newest["rsync_exit_code"] == 255
    assert "Connection timed out" in newest["log_tail"]
    assert newest["duration_seconds"] == 31
    assert body["snapshot_counts"] == {
        "complete": 3,
        "partial": 0,
        "pruned": 0,
        "superseded": 0,
        "missing": 0,
    }
    assert body["running_job"] is None


def test_it_shows_the_running_job_with_progress(staff_client, demo):
    body = json.loads(staff_client.get("/api/hosts/build/").content)
    job = body["running_job"]
    assert job["state"] == "running" and job["worker_id"] == "backup01:4242"
    assert job["progress"]["percent"] == 63.0
    assert body["recent_runs"][0]["progress"]["percent"] == 63.0


def test_it_answers_an_unknown_host_with_a_json_404(staff_client, demo):
    body = assert_json_error(staff_client.get("/api/hosts/nope/"), 404)
    assert "nope" in body["error"]
