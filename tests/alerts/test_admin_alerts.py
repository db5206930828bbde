"""The admin pages of channels, deliveries and tokens work for a superuser."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from pobsync_models.alerts import tokens
from pobsync_models.models import ApiToken, Channel, Delivery
from tests.support.factories import make_host


@pytest.fixture
def admin_client(db) -> Client:
    client = Client()
    client.force_login(get_user_model().objects.create_superuser("root", "r@example.com", "pw-1"))
    return client


def test_channels_are_added_in_the_admin_with_their_target_checked(admin_client):
    host = make_host("h1")
    url = "/admin/pobsync_models/channel/add/"
    assert admin_client.get(url).status_code == 200
    form = {
        "name": "ops",
        "kind": "webhook",
        "target": "not a url",
        "events": "[]",
        "enabled": "on",
    }
    response = admin_client.post(url, form)
    assert response.status_code == 200 and "use http:// or https://" in response.content.decode()
    assert not Channel.objects.exists()
    form.update(target="https://hooks.example/x", secret="s", hosts=[host.pk])
    response = admin_client.post(url, form)
    assert response.status_code == 302, response.content.decode()[:2000]
    channel = Channel.objects.get()
    assert channel.kind == "webhook" and list(channel.hosts.all()) == [host]


def test_deliveries_can_be_retried_and_tokens_revoked_in_the_admin(admin_client):
    now = timezone.now()
    delivery = Delivery.objects.create(
        key="k",
        transport="email",
        state="gave_up",
        attempts=10,
        target="a@example.com",
        subject="h1 failing",
        next_attempt_at=now,
        created_at=now,
        last_error="SMTP down",
    )
    listing = admin_client.get("/admin/pobsync_models/delivery/")
    assert listing.status_code == 200 and "SMTP down" in listing.content.decode()
    admin_client.post(
        "/admin/pobsync_models/delivery/",
        {"action": "retry_now", "_selected_action": [delivery.pk]},
    )
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts) == ("pending", 0)

    row, _ = tokens.create("ci")
    assert admin_client.get("/admin/pobsync_models/apitoken/").status_code == 200
    admin_client.post(
        "/admin/pobsync_models/apitoken/", {"action": "revoke", "_selected_action": [row.pk]}
    )
    assert ApiToken.objects.get().revoked_at is not None
