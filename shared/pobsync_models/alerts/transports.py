"""Sending one message: email through Django's SMTP backend, webhook and ping through
httpx. Every failure is a TransportError with one line; nothing here retries (the
outbox does) and nothing follows redirects."""

from __future__ import annotations

import hashlib
import hmac
import json
import smtplib
from typing import Any

import httpx
from django.conf import settings
from django.core.mail import EmailMessage, get_connection

import pobsync_models

SIGNATURE_HEADER = "X-Pobsync-Signature-256"
DELIVERY_HEADER = "X-Pobsync-Delivery"
USER_AGENT = f"pobsync/{pobsync_models.__version__}"


class TransportError(Exception):
    """The message was not delivered; str() says why in one line."""


def signature(secret: str, body: bytes) -> str:
    """`sha256=<hex HMAC-SHA256 of the raw body>`, as GitHub signs its webhooks."""
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def send_email(to: str, subject: str, body: str) -> None:
    try:
        connection = get_connection(fail_silently=False, timeout=settings.EMAIL_TIMEOUT)
        sent = EmailMessage(
            subject, body, settings.DEFAULT_FROM_EMAIL, [to], connection=connection
        ).send()
    except (smtplib.SMTPException, OSError) as exc:
        raise TransportError(f"SMTP {settings.EMAIL_HOST}:{settings.EMAIL_PORT}: {exc}") from None
    if sent != 1:
        raise TransportError("the SMTP backend accepted no message")


def _post(url: str, content: bytes, headers: dict[str, str]) -> None:
    try:
        response = httpx.post(
            url,
            content=content,
            headers={"User-Agent": USER_AGENT, **headers},
            timeout=settings.POBSYNC_NOTIFY_TIMEOUT,
            follow_redirects=False,
        )
    except httpx.HTTPError as exc:
        raise TransportError(f"{type(exc).__name__}: {exc}") from None
    if not 200 <= response.status_code < 300:
        raise TransportError(f"HTTP {response.status_code} from {url}")


def webhook_body(document: dict[str, Any]) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode("utf-8")


def send_webhook(url: str, secret: str, document: dict[str, Any], delivery_id: int) -> None:
    body = webhook_body(document)
    headers = {"Content-Type": "application/json", DELIVERY_HEADER: str(delivery_id)}
    if secret:
        headers[SIGNATURE_HEADER] = signature(secret, body)
    _post(url, body, headers)


def send_ping(url: str, body: str) -> None:
    _post(url, body.encode("utf-8"), {"Content-Type": "text/plain; charset=utf-8"})
