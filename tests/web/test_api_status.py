from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from django.utils import timezone

from pobsync_models.models import WorkerProcess
from tests.web.guards import assert_api_guarded, assert_json_error

URL = "/api/status/"
ROOT = Path(__file__).resolve().parents[2]


def test_it_is_staff_only_and_read_only(anon_client, user_client, staff_client):
    assert_api_guarded(URL, anon_client, user_client, staff_client)


def test_it_reports_workers_queue_and_problem_hosts(staff_client, demo):
    body = json.loads(staff_client.get(URL).content)
    assert body["status"] == "ok" and body["problems"] == []
    assert body["database"]["reachable"] is True
    assert body["scheduler"]["alive"] is True and body["scheduler"]["processes"] == 1
    assert body["runners"]["alive"] is True
    assert 0 <= body["runners"]["last_seen_seconds_ago"] < 60
    assert body["queue"] == {"queued": 3, "due": 2, "running": 1}
    assert body["hosts"] == {
        "total": 7,
        "enabled": 6,
        "failing": 1,
        "overdue": 1,
        "running": 1,
        "problem_hosts": ["db1", "mail"],
    }
    # "status" keeps meaning the processes; the hosts' health stands beside it.
    assert body["hosts_status"] == "failing" and body["overall"] == "degraded"
    assert body["time"].endswith("Z")


def test_it_answers_503_only_for_the_part_a_strict_probe_names(staff_client, demo):
    assert staff_client.get(URL, {"strict": "processes"}).status_code == 200
    assert staff_client.get(URL, {"strict": "hosts"}).status_code == 503
    assert staff_client.get(URL, {"strict": "all"}).status_code == 503
    assert json.loads(staff_client.get(URL, {"strict": "hosts"}).content)["hosts_status"] == (
        "failing"
    )
    assert_json_error(staff_client.get(URL, {"strict": "nonsense"}), 400)


def test_it_says_degraded_when_no_scheduler_was_seen_recently(staff_client, demo):
    WorkerProcess.objects.filter(kind="scheduler").update(
        last_seen_at=timezone.now() - timedelta(minutes=10)
    )
    response = staff_client.get(URL)
    assert response.status_code == 200  # the web process itself is fine
    body = json.loads(response.content)
    assert body["status"] == "degraded"
    assert body["problems"] == ["no scheduler seen in the last 180 s"]
    assert body["scheduler"]["alive"] is False and body["scheduler"]["registered"] == 1


def test_it_answers_503_to_anyone_when_the_database_is_unreachable(tmp_path):
    """A real process whose database cannot be opened (a SQLite file under /proc):
    503 with one bit of information, before any authentication is attempted."""
    code = (
        "import json, django; django.setup();"
        "from django.test import Client;"
        "r = Client(HTTP_HOST='127.0.0.1').get('/api/status/');"
        "print(json.dumps([r.status_code, r['Content-Type'], r.content.decode()]))"
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "pobsync_models.settings",
        "DATABASE_URL": "sqlite:////proc/pobsync-cannot-exist.sqlite3",
        "POBSYNC_HOME": str(tmp_path),
    }
    env.pop("PYTEST_CURRENT_TEST", None)
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    status, content_type, body = json.loads(out.stdout.strip().splitlines()[-1])
    assert status == 503
    assert content_type == "application/json"
    assert json.loads(body) == {"error": "database unreachable"}


def test_it_refuses_post_with_json_even_for_anonymous(anon_client):
    assert_json_error(anon_client.post(URL), 405)
