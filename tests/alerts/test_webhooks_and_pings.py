"""Webhooks and ping URLs against a real HTTP receiver on 127.0.0.1: signatures, retries
when it answers 500 or is down, and pings in order for a real backup over sshd."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import timedelta

import pytest
from django.utils import timezone

from pobsync_models.alerts.outbox import PING_BODY_MAX
from pobsync_models.models import BackupRun, Delivery, Host
from pobsync_runner.backup import run_backup
from tests.alerts.helpers import scheduler_pass, webhook_channel
from tests.support.factories import make_config, make_host, make_run

FAILED = BackupRun.Outcome.FAILED


def _signed(secret: str, request) -> bool:
    expected = "sha256=" + hmac.new(secret.encode(), request.body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(request.headers["X-Pobsync-Signature-256"], expected)


def test_it_posts_a_signed_versioned_json_document(db, receiver):
    make_config()
    webhook_channel(f"{receiver.url}/hook", secret="s3cret")
    t0 = timezone.now()
    make_run(make_host("h1"), FAILED, started_at=t0 - timedelta(minutes=5), message="boom")
    for minute in range(3):
        scheduler_pass(t0 + timedelta(minutes=minute))
    assert receiver.paths() == ["/hook"]
    request = receiver.requests[0]
    assert request.headers["Content-Type"] == "application/json"
    assert _signed("s3cret", request)
    assert not _signed("wrong", request)
    document = json.loads(request.body)
    assert document["schema"] == "pobsync.notification/1"
    assert document["type"] == "event" and document["title"] == "h1 failing"
    assert document["event"]["kind"] == "host_failing" and document["event"]["host"] == "h1"
    assert document["event"]["message"] == "newest run failed: boom"
    assert document["event"]["details"]["state"] == "failing"
    assert document["delivery"] == {"id": Delivery.objects.get().pk, "attempt": 1}
    assert request.headers["X-Pobsync-Delivery"] == str(Delivery.objects.get().pk)


def test_an_unsigned_channel_sends_no_signature(db, receiver):
    make_config()
    webhook_channel(f"{receiver.url}/plain")
    make_run(make_host("h1"), FAILED)
    scheduler_pass(timezone.now())
    assert "X-Pobsync-Signature-256" not in receiver.requests[0].headers


def test_a_500_or_a_down_receiver_is_retried_until_it_answers(db, receiver):
    make_config()
    webhook_channel(f"{receiver.url}/hook", secret="k")
    t0 = timezone.now()
    make_run(make_host("h1"), FAILED, started_at=t0 - timedelta(minutes=5))
    receiver.status = 500
    scheduler_pass(t0)
    delivery = Delivery.objects.get()
    assert (delivery.state, delivery.attempts, delivery.last_error) == (
        "pending",
        1,
        f"HTTP 500 from {receiver.url}/hook",
    )
    receiver.stop()  # down: connection refused
    scheduler_pass(t0 + timedelta(seconds=31))
    delivery = Delivery.objects.get()
    assert delivery.attempts == 2 and "ConnectError" in delivery.last_error
    receiver.status = 200
    receiver.start()
    scheduler_pass(t0 + timedelta(seconds=40))  # still backing off (60 s after attempt 2)
    assert Delivery.objects.get().attempts == 2
    scheduler_pass(t0 + timedelta(seconds=95))
    delivery = Delivery.objects.get()
    assert (delivery.state, delivery.attempts, delivery.last_error) == ("delivered", 3, "")
    assert len(receiver.requests) == 2  # the 500 and the delivered one
    final = receiver.requests[-1]
    assert _signed("k", final) and json.loads(final.body)["delivery"]["attempt"] == 3


@pytest.mark.slow
@pytest.mark.sshd
def test_a_real_backup_pings_start_then_success(engine, receiver):
    (engine.src / "file.txt").write_text("hello\n")
    Host.objects.filter(pk=engine.host.pk).update(ping_url=f"{receiver.url}/ping/abc/")
    engine.host.refresh_from_db()
    run = run_backup(engine.host)
    assert run.outcome == "success"
    scheduler_pass(timezone.now())
    assert receiver.paths() == ["/ping/abc/start", "/ping/abc"]
    assert receiver.requests[1].body.decode() == "\n".join(
        p for p in (run.message, run.log_tail) if p
    )
    scheduler_pass(timezone.now())
    assert len(receiver.requests) == 2  # one start and one result per run


@pytest.mark.slow
@pytest.mark.sshd
def test_a_failed_backup_pings_fail_with_the_log_tail_and_keeps_its_outcome(engine, receiver):
    engine.host.sources = [str(engine.src / "missing")]
    engine.host.ping_url = f"{receiver.url}/ping/xyz"
    engine.host.save()
    run = run_backup(engine.host)
    assert run.outcome == "failed"
    receiver.status = 500  # the ping receiver is broken at first
    now = timezone.now()
    scheduler_pass(now)
    assert receiver.paths() == ["/ping/xyz/start"]  # the result waits for the start
    start, end = Delivery.objects.order_by("id")
    assert (start.attempts, end.attempts) == (1, 0)
    receiver.status = 200
    scheduler_pass(now + timedelta(seconds=31))
    assert receiver.paths() == ["/ping/xyz/start", "/ping/xyz/start", "/ping/xyz/fail"]
    body = receiver.requests[-1].body.decode()
    assert "missing" in body and len(body.encode()) <= PING_BODY_MAX
    run.refresh_from_db()
    engine.host.refresh_from_db()
    assert run.outcome == "failed" and engine.host.last_run_outcome == "failed"


@pytest.mark.slow
def test_the_sender_thread_pings_start_while_the_run_is_still_running(transactional_db, receiver):
    import threading
    import time

    from pobsync_models.alerts.notify import Sender

    make_config()
    host = make_host("h1", ping_url=f"{receiver.url}/p")
    run = BackupRun.objects.create(host=host, started_at=timezone.now())  # claimed, running
    stop = threading.Event()
    sender = Sender(stop, interval=0.2)
    sender.start()
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and receiver.paths() != ["/p/start"]:
            time.sleep(0.1)
        assert receiver.paths() == ["/p/start"]  # no scheduler pass involved
        BackupRun.objects.filter(pk=run.pk).update(
            outcome="success", finished_at=timezone.now(), log_tail="sent 10 bytes"
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(receiver.paths()) < 2:
            time.sleep(0.1)
    finally:
        stop.set()
        sender.join(10)
    assert receiver.paths() == ["/p/start", "/p"]
    assert receiver.requests[1].body == b"sent 10 bytes"
