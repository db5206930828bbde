"""The dashboard shows the outbox: pending deliveries, and given-up ones as a problem."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from pobsync_models.models import Delivery


def _delivery(key: str, state: str) -> Delivery:
    now = timezone.now()
    return Delivery.objects.create(
        key=key,
        transport="email",
        state=state,
        target="ops@example.com",
        subject="h1 failing",
        next_attempt_at=now,
        created_at=now,
    )


def test_it_shows_pending_and_given_up_notifications(staff_client):
    response = staff_client.get("/dashboard/")
    assert b"undelivered" not in response.content
    assert b"0 pending" in response.content
    _delivery("a", "pending")
    _delivery("b", "gave_up")
    _delivery("c", "gave_up")
    response = staff_client.get("/dashboard/")
    html = response.content.decode()
    assert "1 pending" in html
    assert "2 notifications given up" in html
    assert "/admin/pobsync_models/delivery/?state__exact=gave_up" in html
    admin = Client()
    admin.force_login(get_user_model().objects.create_superuser("root", "r@example.com", "pw-1"))
    listing = admin.get("/admin/pobsync_models/delivery/?state__exact=gave_up")
    assert listing.status_code == 200 and "2 deliveries" in listing.content.decode()
