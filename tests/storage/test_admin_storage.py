from __future__ import annotations

import json

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from pobsync_models.models import Storage
from pobsync_models.storages import MARKER_FILE
from tests.support.factories import make_config

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client() -> Client:
    root = get_user_model().objects.create_superuser("carol", "carol@example.com", "pw-carol-1")
    client = Client()
    client.force_login(root)
    return client


def test_it_adds_a_storage_in_the_admin_and_writes_its_marker(admin_client, tmp_path):
    make_config(tmp_path / "root")
    disk = tmp_path / "disk"
    disk.mkdir()
    response = admin_client.post(
        "/admin/pobsync_models/storage/add/",
        {
            "name": "disk2",
            "path": str(disk),
            "max_running_jobs": "2",
            "min_free_space": "10%",
            "min_free_inodes": "5%",
        },
        follow=True,
    )
    assert response.status_code == 200
    storage = Storage.objects.get(name="disk2")
    assert json.loads((disk / MARKER_FILE).read_text())["marker_id"] == storage.marker_id
    assert f"marker written at {disk / MARKER_FILE}" in response.content.decode()
    listing = admin_client.get("/admin/pobsync_models/storage/").content.decode()
    assert "disk2" in listing and "default" in listing
    change = admin_client.get(f"/admin/pobsync_models/storage/{storage.pk}/change/")
    assert 'name="path"' not in change.content.decode()  # fixed once added


def test_it_refuses_a_bad_minimum_in_the_admin(admin_client, tmp_path):
    response = admin_client.post(
        "/admin/pobsync_models/storage/add/",
        {"name": "d", "path": str(tmp_path), "max_running_jobs": "0",
         "min_free_space": "lots", "min_free_inodes": "5%"},
    )  # fmt: skip
    assert response.status_code == 200
    assert "is not a minimum" in response.content.decode()
    assert not Storage.objects.filter(name="d").exists()
