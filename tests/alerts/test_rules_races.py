"""Two schedulers that judged the same hosts: the one that comes second records nothing,
whether its chunk goes the batch way or host by host."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from pobsync_models.alerts import rules
from pobsync_models.models import Event, HostAlertState
from tests.support.factories import make_config, make_host, make_run


@pytest.mark.parametrize("batch", [True, False])
def test_a_stale_judgement_records_nothing(db, monkeypatch, batch):
    make_config()
    now = timezone.now()
    hosts = [make_host(f"h{i}") for i in range(5)]
    for host in hosts:
        make_run(host, "failed", started_at=now - timedelta(minutes=5))
    stale = rules.host_changes(now)  # the slower scheduler's view
    assert rules.record_host_transitions(now) == 5  # the faster one records all
    monkeypatch.setattr(rules, "host_changes", lambda now: stale)
    monkeypatch.setattr(rules, "can_batch", lambda: batch)
    assert rules.record_host_transitions(now) == 0
    assert Event.objects.count() == 5
    assert set(HostAlertState.objects.values_list("state", "seq")) == {("failing", 1)}


def test_a_partly_stale_chunk_records_exactly_the_missing_transitions(db, monkeypatch):
    make_config()
    now = timezone.now()
    hosts = [make_host(f"h{i}") for i in range(4)]
    for host in hosts[:2]:
        make_run(host, "failed", started_at=now - timedelta(minutes=5))
    assert rules.record_host_transitions(now) == 2
    for host in hosts:
        make_run(host, "failed", started_at=now - timedelta(minutes=1))
    later = rules.host_changes(now)
    assert [c.name for c in later] == ["h2", "h3"]
    real = rules.host_changes
    # The slower scheduler also believes h0 is still "ok" (seq None).
    stale_h0 = rules.Change(hosts[0].pk, "h0", "ok", None, "failing", None, timedelta(hours=36))
    monkeypatch.setattr(rules, "host_changes", lambda now: [stale_h0, *real(now)])
    assert rules.record_host_transitions(now) == 2
    assert Event.objects.filter(kind="host_failing").count() == 4
    assert HostAlertState.objects.get(host=hosts[0]).seq == 1
