"""The dashboard in a real browser: headless Chromium (Debian's package) driven by
Playwright, against the app served by pytest-django's live server with seeded data.

Screenshots go to test-artifacts/ (gitignored); docs/img/ holds committed copies made
by running this test with POBSYNC_UPDATE_DOC_SCREENSHOTS=1.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from tests.support.need import need
from tests.support.webdata import seed_demo

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = [pytest.mark.slow, pytest.mark.browser]

CHROMIUM = "/usr/bin/chromium"
LAUNCH_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
DOC_IMAGES = ROOT / "docs" / "img"


@contextmanager
def _browser(profile: Path) -> Iterator[Page]:
    need(Path(CHROMIUM).exists(), f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        need(False, "playwright is not installed (pip install -e '.[dev]')")
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(profile),
            executable_path=CHROMIUM,
            args=LAUNCH_FLAGS,
            headless=True,
            viewport={"width": 1440, "height": 900},
        )
        try:
            yield context.pages[0] if context.pages else context.new_page()
        finally:
            context.close()


def _shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    target = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(target), full_page=True)
    if os.environ.get("POBSYNC_UPDATE_DOC_SCREENSHOTS") == "1":
        DOC_IMAGES.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(target, DOC_IMAGES / f"{name}.png")


def test_it_shows_the_dashboard_and_a_host_page_to_a_staff_user(
    live_server, transactional_db, tmp_path
):
    # Seed before the browser starts: Playwright's sync API runs an event loop in this
    # thread, and Django refuses ORM calls from a thread with a running loop.
    seed_demo(timezone.now())
    get_user_model().objects.create_user("alice", "alice@example.com", "alice-pw-1", is_staff=True)
    with _browser(tmp_path / "profile") as page:
        page.goto(f"{live_server.url}/dashboard/")
        # Anonymous: the admin login, which brings us back to the dashboard.
        assert "/admin/login/" in page.url and "next=/dashboard/" in page.url
        page.fill("#id_username", "alice")
        page.fill("#id_password", "alice-pw-1")
        page.click("input[type=submit]")
        page.wait_for_url(f"{live_server.url}/dashboard/")

        table = page.locator("#host-table")
        assert table.is_visible()
        first_row = table.locator("tbody tr").first
        assert "db1" in first_row.inner_text() and "failing" in first_row.inner_text()
        assert page.locator("#problems").is_visible()
        assert "overdue" in page.locator("#problems").inner_text()
        assert page.locator("#summary-hosts .big").inner_text() == "7"
        assert page.get_by_text("63%").first.is_visible()  # the running job's progress
        assert page.locator("#auto-refresh").is_checked()
        # Computed styles: the stylesheet is served (whitenoise) and status is coloured.
        badge = table.locator(".badge.b-failing").first
        assert badge.evaluate("e => getComputedStyle(e).backgroundColor") != "rgba(0, 0, 0, 0)"
        _shot(page, "dashboard")

        page.click("#host-table >> text=db1")
        page.wait_for_url(f"{live_server.url}/dashboard/hosts/db1/")
        assert page.locator("h1").inner_text() == "db1"
        assert page.locator("#config").is_visible()
        assert page.get_by_text("Connection timed out").is_visible()
        assert page.locator("#present-snapshots tbody tr").count() == 3
        _shot(page, "host")

        page.goto(f"{live_server.url}/dashboard/queue/")
        assert page.locator("#queued tbody tr").count() == 3
        _shot(page, "queue")

        # Turning auto-refresh off sticks across a reload.
        page.uncheck("#auto-refresh")
        page.reload()
        assert not page.locator("#auto-refresh").is_checked()
