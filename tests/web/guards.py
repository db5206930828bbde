"""The access rules every route shares, asserted the same way for each route module."""

from __future__ import annotations

import json

from django.test import Client

UNSAFE_METHODS = ("post", "put", "patch", "delete")


def assert_json_error(response, status: int) -> dict:
    assert response.status_code == status, response.content[:500]
    assert response["Content-Type"] == "application/json"
    body = json.loads(response.content)
    assert set(body) == {"error"} and body["error"]
    return body


def assert_api_guarded(url: str, anon: Client, user: Client, staff: Client) -> None:
    """Anonymous 401 JSON, non-staff 403 JSON (no redirect), unsafe methods 405 JSON."""
    body = assert_json_error(anon.get(url), 401)
    assert "log in" in body["error"]
    assert_json_error(user.get(url), 403)
    for method in UNSAFE_METHODS:
        response = getattr(staff, method)(url)
        assert_json_error(response, 405)
        assert response["Allow"] == "GET, HEAD"
    head = staff.head(url)
    assert head.status_code == 200 and head.content == b""


def assert_page_guarded(url: str, anon: Client, user: Client, staff: Client) -> None:
    """Anonymous -> the admin login with ?next=, non-staff 403, unsafe methods 405."""
    response = anon.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/?next=")
    assert url.split("?")[0] in response["Location"].replace("%2F", "/")
    denied = user.get(url)
    assert denied.status_code == 403
    assert b"<table" not in denied.content
    for method in UNSAFE_METHODS:
        assert getattr(staff, method)(url).status_code == 405
    assert staff.head(url).status_code == 200
