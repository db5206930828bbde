"""The browse pages in headless Chromium: from the host page into a snapshot, down a
directory, to a file's history, and a download (tests/web/test_browser.py's set-up)."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from tests.support.factories import make_config, make_host, make_snapshot
from tests.web.test_browser import _browser, _shot

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def test_it_browses_a_snapshot_and_a_files_history(live_server, transactional_db, tmp_path):
    root = tmp_path / "backups"
    make_config(root)
    host = make_host("web1", sources=["/srv"])
    now = timezone.now().replace(microsecond=0)
    old = make_snapshot(host, now - timedelta(days=1), path=str(root / "web1" / "a"))
    new = make_snapshot(host, now, path=str(root / "web1" / "b"))
    for record, text in ((old, "version one\n"), (new, "version two\n")):
        (Path(record.path) / "etc").mkdir(parents=True)
        (Path(record.path) / "etc" / "motd").write_text(text)
    os.symlink("/etc/shadow", Path(new.path) / "etc" / "passwd")
    get_user_model().objects.create_user("alice", "alice@example.com", "alice-pw-1", is_staff=True)
    with _browser(tmp_path / "profile") as page:
        page.goto(f"{live_server.url}/admin/login/?next=/dashboard/hosts/web1/")
        page.fill("#id_username", "alice")
        page.fill("#id_password", "alice-pw-1")
        page.click("input[type=submit]")
        page.wait_for_url(f"{live_server.url}/dashboard/hosts/web1/")

        page.click(f"#present-snapshots >> text={new.name}")
        page.wait_for_url(f"**/snapshots/{new.name}/browse/**")
        assert "1 entry" in page.locator(".facts").inner_text()
        page.click("#listing >> text=etc/")
        page.wait_for_url("**path=/etc")
        rows = page.locator("#listing tbody tr")
        assert rows.count() == 2
        assert "→ /etc/shadow" in rows.nth(1).inner_text()  # shown as a link, not followed
        assert page.locator("#listing a", has_text="passwd").count() == 0
        _shot(page, "browse")

        with page.expect_download() as info:
            page.click("#listing >> text=motd")
        download = info.value
        assert download.suggested_filename == "motd"
        assert Path(download.path()).read_text() == "version two\n"

        page.locator("#listing tbody tr").first.locator("text=history").click()
        page.wait_for_url("**/history/?path=/etc/motd")
        assert page.locator("#versions tbody tr").count() == 2
        assert new.name in page.locator("#versions tbody tr").first.inner_text()
        _shot(page, "history")
