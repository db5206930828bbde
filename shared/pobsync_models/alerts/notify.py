"""The notification pass: rules -> events -> deliveries, and sending due deliveries.

Invariants:
- Nothing here raises into the scheduler: evaluate() and send_due() log and count their
  failures, so a broken SMTP server or webhook never stops a tick, and nothing here
  writes a job, a run or a host's run status, so it never changes a backup's outcome.
- A delivery is sent by one process at a time: it is claimed with a conditional UPDATE
  of next_attempt_at (pushed CLAIM_LEASE ahead) and attempts; a process that dies
  mid-send leaves it to be retried after the lease (at-least-once).
- Failed attempts back off exponentially (BACKOFF_BASE * 2^(n-1), capped at
  BACKOFF_CAP); after POBSYNC_NOTIFY_MAX_ATTEMPTS attempts the row is `gave_up`.
- Pings of one host go out in row order: a ping waits while an earlier ping of the same
  host is still pending, so `/start` always reaches the receiver before the result.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import DatabaseError, connection
from django.db.models import F
from django.utils import timezone

from pobsync_models.alerts import outbox, rules, transports
from pobsync_models.models import Delivery

log = logging.getLogger("pobsync.alerts")

BACKOFF_BASE = timedelta(seconds=30)
BACKOFF_CAP = timedelta(hours=1)
CLAIM_LEASE = timedelta(minutes=5)
SEND_LIMIT = 200  # deliveries read per send pass
Transport = Delivery.Transport
State = Delivery.State


def backoff(attempt: int) -> timedelta:
    return min(BACKOFF_CAP, BACKOFF_BASE * 2 ** max(0, attempt - 1))


@dataclass
class PassResult:
    transitions: int = 0
    lost: int = 0
    planned: int = 0
    delivered: int = 0
    failed: int = 0
    gave_up: int = 0
    errors: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{self.transitions} transitions, {self.lost} lost processes, "
            f"{self.planned} deliveries planned, {self.delivered} delivered, "
            f"{self.failed} failed, {self.gave_up} given up"
        )

    @property
    def anything(self) -> bool:
        return bool(self.transitions or self.lost or self.planned or self.delivered or self.failed)


def evaluate(now: datetime, result: PassResult | None = None) -> PassResult:
    """Record events from the database's state and plan their deliveries."""
    result = result or PassResult()
    steps = (
        ("host rules", lambda: setattr(result, "transitions", rules.record_host_transitions(now))),
        ("process rules", lambda: setattr(result, "lost", rules.record_lost_processes(now))),
        ("planning", lambda: setattr(result, "planned", outbox.plan(now).total)),
    )
    for name, step in steps:
        try:
            step()
        except DatabaseError as exc:
            log.warning("alerts: %s failed: %s", name, exc)
            result.errors.append(f"{name}: {exc}")
        except Exception as exc:  # a bug here must not stop the scheduler's ticks
            log.exception("alerts: %s failed", name)
            result.errors.append(f"{name}: {type(exc).__name__}: {exc}")
    return result


def send(delivery: Delivery, attempt: int) -> None:
    """One attempt at one delivery; TransportError when it did not go through."""
    if delivery.transport == Transport.EMAIL:
        transports.send_email(delivery.target, delivery.subject, delivery.body)
    elif delivery.transport == Transport.WEBHOOK:
        document = {**delivery.payload, "delivery": {"id": delivery.pk, "attempt": attempt}}
        secret = delivery.channel.secret if delivery.channel else ""
        transports.send_webhook(delivery.target, secret, document, delivery.pk)
    else:
        transports.send_ping(delivery.target, delivery.body)


def _pending_pings(host_ids: set[int]) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {pk: [] for pk in host_ids}
    rows = (
        Delivery.objects.filter(state=State.PENDING, transport=Transport.PING, host_id__in=host_ids)
        .order_by("id")
        .values_list("host_id", "id")
    )
    for host_id, pk in rows:
        out[host_id].append(pk)
    return out


def _attempt(delivery: Delivery, now: datetime, result: PassResult) -> bool:
    """Claim, send and record one delivery; True when it was delivered."""
    claimed = Delivery.objects.filter(
        pk=delivery.pk, state=State.PENDING, next_attempt_at=delivery.next_attempt_at
    ).update(next_attempt_at=now + CLAIM_LEASE, attempts=F("attempts") + 1)
    if not claimed:
        return False  # another process is sending it
    attempt = delivery.attempts + 1
    try:
        send(delivery, attempt)
    except Exception as exc:  # a delivery never breaks the pass
        error = str(exc) if isinstance(exc, transports.TransportError) else repr(exc)
        done = attempt >= settings.POBSYNC_NOTIFY_MAX_ATTEMPTS
        Delivery.objects.filter(pk=delivery.pk).update(
            state=State.GAVE_UP if done else State.PENDING,
            next_attempt_at=now + backoff(attempt),
            last_error=error[:2000],
        )
        log.warning(
            "delivery %s (%s) attempt %d failed: %s%s",
            delivery.pk,
            delivery.subject,
            attempt,
            error,
            "; giving up" if done else "",
        )
        if done:
            result.gave_up += 1
        else:
            result.failed += 1
        return False
    Delivery.objects.filter(pk=delivery.pk).update(
        state=State.DELIVERED, delivered_at=timezone.now(), last_error=""
    )
    result.delivered += 1
    return True


def send_due(
    now: datetime | None = None,
    *,
    result: PassResult | None = None,
    limit: int = SEND_LIMIT,
    budget: float = 30.0,
) -> PassResult:
    """Send deliveries whose next attempt is due, oldest first, for at most `budget`
    seconds. Never raises for a failed send or a database error."""
    now = now or timezone.now()
    result = result or PassResult()
    deadline = time.monotonic() + budget
    try:
        due = list(
            Delivery.objects.filter(state=State.PENDING, next_attempt_at__lte=now)
            .select_related("channel")
            .order_by("id")[:limit]
        )
        pings = _pending_pings(
            {d.host_id for d in due if d.transport == Transport.PING and d.host_id is not None}
        )
        for delivery in due:
            if time.monotonic() > deadline:
                break
            if delivery.transport == Transport.PING and delivery.host_id is not None:
                queue = pings.get(delivery.host_id) or []
                if not queue or queue[0] != delivery.pk:
                    continue  # an earlier ping of this host goes first
                if _attempt(delivery, now, result):
                    queue.pop(0)
            else:
                _attempt(delivery, now, result)
    except DatabaseError as exc:
        log.warning("alerts: sending failed: %s", exc)
        result.errors.append(f"sending: {exc}")
    return result


class Sender(threading.Thread):
    """Plans ping deliveries and sends due deliveries every `interval` seconds beside
    the scheduler's loop, so a slow SMTP server or webhook never delays a tick and a
    ping follows its run within seconds. Own database connection."""

    def __init__(self, stop: threading.Event, interval: float = 5.0) -> None:
        super().__init__(name="pobsync-sender", daemon=True)
        self.stop = stop
        self.interval = interval

    def run(self) -> None:
        try:
            while not self.stop.wait(self.interval):
                try:
                    # Pings are planned here too, so /start follows a claim within
                    # seconds rather than a scheduler interval (keys keep them unique).
                    outbox.plan_pings(timezone.now(), outbox.PlanResult())
                    result = send_due()
                except Exception:  # keep sending whatever one pass hit
                    log.exception("alerts: send pass failed")
                    connection.close()
                    continue
                if result.delivered or result.failed or result.gave_up:
                    log.info("alerts: %s", result.summary())
        finally:
            connection.close()
