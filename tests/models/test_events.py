"""record_event (pobsync_models.events): one row per occurrence key, whoever reports it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import transaction

from pobsync_models.events import record_event
from pobsync_models.models import BackupRun, Event
from tests.support.factories import make_host

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 11, 30, 2, 15, tzinfo=UTC)


def test_it_records_an_event_with_the_kinds_default_severity_and_the_hosts_name():
    host = make_host("web1")
    event = record_event(
        Event.Kind.HOST_FAILING, "host-failing:web1:run-1", "rsync exit 23", host=host, at=T0
    )
    assert event is not None
    stored = Event.objects.get()
    assert (stored.kind, stored.severity, stored.subject, stored.host_id) == (
        "host_failing",
        "critical",
        "web1",
        host.pk,
    )
    assert stored.created_at == T0


def test_it_records_one_row_per_key_and_returns_none_for_a_repeat():
    first = record_event(Event.Kind.RUNNER_LOST, "runner-lost:a:1", "gone", subject="a")
    again = record_event(Event.Kind.RUNNER_LOST, "runner-lost:a:1", "gone", subject="a")
    assert first is not None
    assert again is None
    assert Event.objects.count() == 1


def test_it_leaves_the_callers_transaction_usable_after_a_duplicate():
    host = make_host("web2")
    record_event(Event.Kind.HOST_OVERDUE, "k", "late", host=host)
    with transaction.atomic():
        assert record_event(Event.Kind.HOST_OVERDUE, "k", "late", host=host) is None
        # the outer transaction still works: a write after the duplicate lands
        BackupRun.objects.create(host=host, outcome="success", started_at=T0)
    assert BackupRun.objects.filter(host=host).count() == 1


def test_it_keeps_the_event_when_its_host_is_removed():
    host = make_host("web3")
    record_event(Event.Kind.HOST_FAILING, "gone-host", "failed", host=host)
    host.delete()
    stored = Event.objects.get()
    assert stored.host_id is None
    assert stored.subject == "web3"


@pytest.mark.parametrize(
    ("kind", "key"),
    [("no_such_kind", "k"), (Event.Kind.HOST_FAILING, ""), (Event.Kind.HOST_FAILING, "x" * 256)],
)
def test_it_refuses_an_unknown_kind_or_a_bad_key(kind, key):
    with pytest.raises(ValueError):
        record_event(kind, key, "m", subject="s")
    assert not Event.objects.exists()
