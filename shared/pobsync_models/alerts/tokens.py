"""Read-only API tokens: created once (printed, never stored), kept as SHA-256 digests.

A token is `pbs_` + 43 URL-safe characters (256 random bits), so a plain SHA-256 is
enough (no slow hash: guessing is hopeless, and every API request checks one).
Verification looks the digest up by its unique index and compares it in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

from django.db.models import Q
from django.utils import timezone

from pobsync_models.models import ApiToken

PREFIX = "pbs_"
SHOWN = 8  # characters of the token kept in clear to tell tokens apart
LAST_USED_GRANULARITY = timedelta(seconds=60)  # last_used_at is written at most this often


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create(name: str) -> tuple[ApiToken, str]:
    """A new token row and the token itself (the only time it exists in clear)."""
    token = PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(name=name, prefix=token[: len(PREFIX) + SHOWN], digest=digest(token))
    row.full_clean()
    row.save()
    return row, token


def verify(token: str, now: datetime | None = None) -> ApiToken | None:
    """The active token row for `token`, with its last use recorded; None if unknown or
    revoked."""
    if not token.startswith(PREFIX) or len(token) > 200:
        return None
    wanted = digest(token)
    row = ApiToken.objects.filter(digest=wanted, revoked_at__isnull=True).first()
    if row is None or not hmac.compare_digest(row.digest, wanted):
        return None
    now = now or timezone.now()
    ApiToken.objects.filter(
        Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - LAST_USED_GRANULARITY),
        pk=row.pk,
    ).update(last_used_at=now)
    return row


def revoke(name: str) -> bool:
    """Revoke the named token; False when there is no active token of that name."""
    return bool(
        ApiToken.objects.filter(name=name, revoked_at__isnull=True).update(
            revoked_at=timezone.now()
        )
    )
