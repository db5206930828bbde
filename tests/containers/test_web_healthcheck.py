"""services/web/healthcheck.py, the web container's HEALTHCHECK, against a real HTTP
server on 127.0.0.1: 200 and 401 are healthy, everything else is not (contract 5)."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.support.need import free_port

SCRIPT = Path(__file__).resolve().parents[2] / "services" / "web" / "healthcheck.py"


class Answer(BaseHTTPRequestHandler):
    status = 200
    seen: list[dict[str, str]] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        Answer.seen.append({"path": self.path, **dict(self.headers)})
        self.send_response(Answer.status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[int]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    Answer.seen.clear()
    yield httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


def probe(port: int, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT)],
        env={"POBSYNC_WEB_BIND": f"0.0.0.0:{port}", **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.mark.parametrize("status", [200, 401])
def test_it_is_healthy_on_200_and_401(server: int, status: int) -> None:
    Answer.status = status
    result = probe(server)
    assert result.returncode == 0, result.stdout
    assert f"answered {status}" in result.stdout
    assert Answer.seen[-1]["path"] == "/api/status/"


@pytest.mark.parametrize("status", [403, 404, 500, 503])
def test_it_is_unhealthy_on_anything_else(server: int, status: int) -> None:
    Answer.status = status
    result = probe(server)
    assert result.returncode == 1
    assert f"unhealthy: http://127.0.0.1:{server}/api/status/ answered {status}" in result.stdout


def test_it_is_unhealthy_when_nothing_listens() -> None:
    result = probe(free_port())
    assert result.returncode == 1
    assert result.stdout.startswith("unhealthy:")


def test_it_sends_an_allowed_host_and_the_https_proxy_header(server: int) -> None:
    Answer.status = 401
    probe(server, POBSYNC_ALLOWED_HOSTS="*, .backup.example.com,127.0.0.1")
    headers = {k.lower(): v for k, v in Answer.seen[-1].items()}
    assert headers["host"] == "backup.example.com"
    assert headers["x-forwarded-proto"] == "https"
