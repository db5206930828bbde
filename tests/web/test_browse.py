"""Browse pages, downloads and the files API over a real snapshot directory holding
hostile content: escaping symlinks, traversal attempts, odd names."""

from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone

from pobsync_models.models import BackupJob, RestoreRequest
from tests.support.factories import make_config, make_host, make_snapshot
from tests.support.trees import manifest
from tests.web.guards import assert_api_guarded, assert_json_error, assert_page_guarded

SECRET = "backup server secret\n"


@pytest.fixture
def snap(db, tmp_path):
    """web1 with two complete snapshots; the newer one is hostile."""
    secret = tmp_path / "server-secret"
    secret.write_text(SECRET)
    root = tmp_path / "backups"
    make_config(root)
    host = make_host("web1", sources=["/srv"])
    now = timezone.now().replace(microsecond=0)
    old = make_snapshot(host, now - timedelta(days=1), path=str(root / "web1" / "old"))
    new = make_snapshot(host, now, path=str(root / "web1" / "new"))
    for record, text in ((old, "v1\n"), (new, "v2\n")):
        base = Path(record.path)
        (base / "etc").mkdir(parents=True)
        (base / "etc" / "motd").write_text(text)
        (base / ".pobsync-snapshot.json").write_text("{}")
    # unchanged between the two: a hard link, as --link-dest makes it
    (Path(old.path) / "etc" / "hosts").write_text("127.0.0.1 localhost\n")
    os.link(Path(old.path) / "etc" / "hosts", Path(new.path) / "etc" / "hosts")
    base = Path(new.path)
    os.symlink(str(secret), base / "etc" / "passwd")  # points at the backup server
    os.symlink("/", base / "rootlink")
    (base / "dir with space").mkdir()
    (base / "dir with space" / "naïve\nname.txt").write_bytes(b"x" * 10_000)
    os.link(base / "etc" / "motd", base / "dir with space" / "motd-link")
    os.mkfifo(base / "etc" / "fifo")
    big = base / "big"
    big.mkdir()
    for i in range(450):
        (big / f"f{i:04d}").write_text("")
    (big / "subdir").mkdir()
    return host, old, new


def browse_url(record, path="/"):
    return f"/dashboard/hosts/web1/snapshots/{record.name}/browse/?path={path}"


def test_the_pages_are_staff_only(snap, anon_client, user_client, staff_client):
    _, _, new = snap
    for url in (
        browse_url(new),
        "/dashboard/hosts/web1/history/?path=/etc/motd",
        f"/dashboard/hosts/web1/snapshots/{new.name}/download/?path=/etc/motd",
        f"/dashboard/hosts/web1/snapshots/{new.name}/tar/?path=/etc",
    ):
        assert_page_guarded(url, anon_client, user_client, staff_client)
        assert staff_client.post(url).status_code == 405
    assert_api_guarded(
        f"/api/hosts/web1/snapshots/{new.name}/files/?path=/etc",
        anon_client,
        user_client,
        staff_client,
    )
    assert_api_guarded("/api/restores/", anon_client, user_client, staff_client)


def test_it_lists_a_directory_dirs_first_with_links_shown_as_links(snap, staff_client):
    _, _, new = snap
    page = staff_client.get(browse_url(new))
    assert page.status_code == 200
    text = page.content.decode()
    assert ".pobsync-snapshot.json" not in text
    order = [text.index(n) for n in ("big/", "dir with space/", "etc/", "rootlink")]
    assert order == sorted(order)
    etc = staff_client.get(browse_url(new, "/etc")).content.decode()
    assert 'passwd <span class="muted">→ ' in etc and "server-secret</span>" in etc
    assert "backup server secret" not in etc
    assert "-rw-r--r--" in etc and "lrwxrwxrwx" in etc and "prw" in etc
    crumbs = etc[etc.index('id="crumbs"') :][:400]
    assert 'href="?path=/"' in crumbs and "<strong>etc</strong>" in crumbs


def test_a_large_directory_is_paginated(snap, staff_client):
    _, _, new = snap
    first = staff_client.get(browse_url(new, "/big")).content.decode()
    assert "451 entries" in first and "page 1 of 3" in first
    assert first.count("<tr>") == 200 + 1  # header row + one page
    assert first.index("subdir/") < first.index("f0000")  # the directory first
    last = staff_client.get(browse_url(new, "/big") + "&page=3").content.decode()
    assert last.count("<tr>") == 51 + 1 and "f0449" in last
    assert staff_client.get(browse_url(new, "/big") + "&page=4").status_code == 404


@pytest.mark.parametrize(
    "path",
    [
        "/etc/passwd/x",  # through a symlink
        "/rootlink/etc",  # through a link to /
        "/../../../etc",
        "/etc/../..",
        "etc",
        "/etc%00x",
        "/.pobsync-snapshot.json",
        "/" + "a" * 5000,
        "/" + "b" * 300,
        "/etc%2F..%2F..",
    ],
)
def test_hostile_paths_are_404_everywhere(snap, staff_client, path):
    _, _, new = snap
    for url in (
        browse_url(new, path),
        f"/dashboard/hosts/web1/snapshots/{new.name}/download/?path={path}",
        f"/dashboard/hosts/web1/snapshots/{new.name}/tar/?path={path}",
        f"/dashboard/hosts/web1/history/?path={path}",
    ):
        response = staff_client.get(url)
        assert response.status_code == 404, url
        assert SECRET.encode() not in response.content
    assert_json_error(
        staff_client.get(f"/api/hosts/web1/snapshots/{new.name}/files/?path={path}"), 404
    )


def test_download_refuses_a_symlink_and_streams_a_file_with_ranges(snap, staff_client):
    _, _, new = snap
    base = f"/dashboard/hosts/web1/snapshots/{new.name}/download/?path="
    for link in ("/etc/passwd", "/rootlink", "/etc/fifo", "/etc"):
        refused = staff_client.get(base + link)
        assert refused.status_code == 404 and SECRET.encode() not in refused.content
    name = "/dir%20with%20space/na%C3%AFve%0Aname.txt"
    whole = staff_client.get(base + name)
    assert whole.status_code == 200 and whole.streaming
    assert b"".join(whole.streaming_content) == b"x" * 10_000
    assert whole["Content-Length"] == "10000" and whole["Accept-Ranges"] == "bytes"
    assert whole["Content-Type"] == "application/octet-stream"
    assert whole["Content-Disposition"] == "attachment; filename*=utf-8''na%C3%AFve%0Aname.txt"
    part = staff_client.get(base + name, HTTP_RANGE="bytes=100-199")
    assert part.status_code == 206 and part["Content-Range"] == "bytes 100-199/10000"
    assert b"".join(part.streaming_content) == b"x" * 100 and part["Content-Length"] == "100"
    tail = staff_client.get(base + name, HTTP_RANGE="bytes=-10")
    assert tail["Content-Range"] == "bytes 9990-9999/10000"
    past = staff_client.get(base + name, HTTP_RANGE="bytes=20000-")
    assert past.status_code == 416 and past["Content-Range"] == "bytes */10000"


def test_the_tar_download_extracts_to_the_snapshot(snap, staff_client, tmp_path):
    _, _, new = snap
    for fmt, flag in (("tar", "-x"), ("tar.gz", "-xz")):
        response = staff_client.get(
            f"/dashboard/hosts/web1/snapshots/{new.name}/tar/?path=/&format={fmt}"
        )
        assert response.status_code == 200 and response.streaming
        assert f"web1-{new.name}-root.{fmt}" in response["Content-Disposition"]
        data = b"".join(response.streaming_content)
        out = tmp_path / f"x-{fmt}"
        out.mkdir()
        subprocess.run(
            ["tar", flag, "--numeric-owner", "-p", "-f", "-", "-C", str(out)],
            input=data,
            check=True,
        )
        expected = manifest(Path(new.path))
        expected.pop(".pobsync-snapshot.json")
        assert manifest(out) == expected
        assert os.readlink(out / "etc" / "passwd").endswith("server-secret")
        assert (out / "etc" / "motd").stat().st_ino == (
            out / "dir with space" / "motd-link"
        ).stat().st_ino
    members = tarfile.open(fileobj=io.BytesIO(data), mode="r:gz").getnames()
    assert "dir with space/naïve\nname.txt" in members


def test_file_history_lists_changes_not_snapshots(snap, staff_client):
    _, old, new = snap
    motd = staff_client.get("/dashboard/hosts/web1/history/?path=/etc/motd").content.decode()
    assert "2 versions across 2 complete snapshots" in motd
    hosts = staff_client.get("/dashboard/hosts/web1/history/?path=/etc/hosts").content.decode()
    assert "1 version across 2 complete snapshots" in hosts
    assert f'<td class="mono">{old.name}</td>\n      <td class="mono">{new.name}</td>' in hosts
    passwd = staff_client.get("/dashboard/hosts/web1/history/?path=/etc/passwd").content.decode()
    assert "absent" in passwd and "symlink" in passwd and SECRET not in passwd


def test_the_files_api_lists_like_the_page(snap, staff_client):
    _, _, new = snap
    body = json.loads(
        staff_client.get(f"/api/hosts/web1/snapshots/{new.name}/files/?path=/etc").content
    )
    assert body["path"] == "/etc" and body["count"] == 4
    by_name = {e["name"]: e for e in body["results"]}
    assert by_name["passwd"]["type"] == "symlink"
    assert by_name["passwd"]["link_target"].endswith("server-secret")
    assert by_name["motd"] | {"mtime": None} == {
        "name": "motd", "path": "/etc/motd", "type": "file", "size": 3, "mode": "-rw-r--r--",
        "mode_octal": "0644", "uid": os.getuid(), "gid": os.getgid(), "mtime": None,
        "link_target": None,
    }  # fmt: skip
    big = json.loads(
        staff_client.get(f"/api/hosts/web1/snapshots/{new.name}/files/?path=/big&page=2").content
    )
    assert big["count"] == 451 and big["previous"] and big["next"].endswith("page=3")
    missing = staff_client.get("/api/hosts/web1/snapshots/2000-01-01T000000Z/files/?path=/")
    assert_json_error(missing, 404)


def test_the_restore_form_is_off_by_default_and_needs_the_permission(
    snap, staff_client, staff, settings
):
    _, _, new = snap
    url = f"/dashboard/hosts/web1/snapshots/{new.name}/restore/"
    assert "Queue restore" not in staff_client.get(browse_url(new)).content.decode()
    assert staff_client.post(url, {"path": "/etc"}).status_code == 403
    settings.POBSYNC_WEB_RESTORE = True
    assert staff_client.post(url, {"path": "/etc"}).status_code == 403  # no permission
    assert staff_client.get(url).status_code == 405
    staff.user_permissions.add(Permission.objects.get(codename="add_restorerequest"))
    staff_client.force_login(staff)
    assert "Queue restore" in staff_client.get(browse_url(new)).content.decode()
    refused = staff_client.post(url, {"path": "/etc"})  # web1 has no restore root
    assert refused.status_code == 400 and "has no restore root" in refused.content.decode()
    snap[0].restore_root = "/"
    snap[0].save()
    bad = staff_client.post(url, {"path": "/etc/passwd/x"})
    assert bad.status_code == 400 and "goes through a symlink" in bad.content.decode()
    done = staff_client.post(url, {"path": "/etc", "overwrite": "on"})
    assert done.status_code == 302 and done["Location"].startswith("/dashboard/queue/#job-")
    job = BackupJob.objects.get(kind="restore")
    assert (job.restore.paths, job.restore.overwrite, job.restore.requested_by) == (
        ["/etc"],
        True,
        "web:alice",
    )
    body = json.loads(staff_client.get(f"/api/restores/{job.restore_id}/").content)
    assert body["requested_by"] == "web:alice" and body["outcome"] == "pending"
    assert body["job"] == job.pk and body["job_state"] == "queued"
    BackupJob.objects.filter(pk=job.pk).update(state="cancelled")
    listed = json.loads(staff_client.get("/api/restores/?host=web1").content)
    assert [r["outcome"] for r in listed["results"]] == ["cancelled"]
    assert RestoreRequest.objects.count() == 1
    assert_json_error(staff_client.get("/api/restores/999/"), 404)


def test_the_restore_form_checks_csrf(snap, staff, settings):
    from django.test import Client

    _, _, new = snap
    settings.POBSYNC_WEB_RESTORE = True
    staff.user_permissions.add(Permission.objects.get(codename="add_restorerequest"))
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff)
    url = f"/dashboard/hosts/web1/snapshots/{new.name}/restore/"
    assert client.post(url, {"path": "/etc"}).status_code == 403
    assert not BackupJob.objects.exists()


def test_head_on_a_download_sends_the_headers_only(snap, staff_client):
    _, _, new = snap
    url = f"/dashboard/hosts/web1/snapshots/{new.name}/download/?path=/etc/motd"
    head = staff_client.head(url)
    assert head.status_code == 200 and head.content == b""
    assert head["Content-Length"] == "3" and head["Accept-Ranges"] == "bytes"
