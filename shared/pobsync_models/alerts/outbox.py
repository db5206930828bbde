"""Planning the outbox: Delivery rows for events, reminders, digests and ping URLs.

Invariants:
- Every delivery has a unique key (event:<event>:<channel>, reminder:<event>:<channel>:<n>,
  digest:<channel>:<day>, ping:<run>:start|end), so two schedulers planning at once
  write each row once. Rows are inserted together inside atomic(); an IntegrityError
  means another scheduler got there first, and the batch falls back to one atomic()
  insert per row, where IntegrityError means "already planned".
- An event is routed once: a RoutedEvent row is written in the same transaction as its
  deliveries. Events older than ROUTE_WINDOW are never routed (a scheduler that was down
  for a week does not mail a week of history).
- Planning only writes rows; sending is notify.send_due's job.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef

from pobsync_models.alerts import messages
from pobsync_models.models import (
    BackupRun,
    Channel,
    Delivery,
    Event,
    Host,
    HostAlertState,
    RoutedEvent,
)
from pobsync_models.queue import retrying

ROUTE_WINDOW = timedelta(days=7)
PING_WINDOW = timedelta(days=1)  # runs older than this get no pings
PING_BODY_MAX = 10_000  # bytes of log tail sent with a ping (healthchecks.io takes 100 kB)
DIGEST_EVENTS_MAX = 50
Transport = Delivery.Transport


@dataclass
class PlanResult:
    events: int = 0
    deliveries: int = 0
    reminders: int = 0
    digests: int = 0
    pings: int = 0

    @property
    def total(self) -> int:
        return self.deliveries + self.reminders + self.digests + self.pings


@dataclass(frozen=True)
class Route:
    """A channel as routing needs it: which hosts (None: all) and kinds (None: all)."""

    channel: Channel
    hosts: frozenset[int] | None
    kinds: frozenset[str] | None

    def wants(self, kind: str, host_id: int | None) -> bool:
        if self.kinds is not None and kind not in self.kinds:
            return False
        if self.hosts is None:
            return True
        return host_id is not None and host_id in self.hosts


def routes() -> list[Route]:
    """Enabled channels with their host lists: 2 queries."""
    channels = list(Channel.objects.filter(enabled=True).prefetch_related("hosts"))
    return [
        Route(
            c,
            frozenset(h.pk for h in c.hosts.all()) or None,
            frozenset(c.events) or None,
        )
        for c in channels
    ]


def _transport(channel: Channel) -> str:
    return Transport.EMAIL if channel.kind == Channel.Kind.EMAIL else Transport.WEBHOOK


def event_delivery(event: Event, channel: Channel, now: datetime, reminder: int = 0) -> Delivery:
    key = (
        f"reminder:{event.pk}:{channel.pk}:{reminder}"
        if reminder
        else f"event:{event.pk}:{channel.pk}"
    )
    title = messages.title(event, reminder)
    text = messages.body(event, reminder)
    document = None
    if channel.kind == Channel.Kind.WEBHOOK:
        kind = "reminder" if reminder else "event"
        event_doc = messages.event_document(event)
        document = messages.payload(kind, title, text, event=event_doc, reminder=reminder)
    return _delivery(channel, key, title, text, document, now, event=event, host_id=event.host_id)


def _delivery(
    channel: Channel,
    key: str,
    title: str,
    text: str,
    document: dict | None,
    now: datetime,
    **extra: object,
) -> Delivery:
    """A channel's delivery row: email rows keep the text, webhook rows the JSON
    document (which carries the text too)."""
    return Delivery(
        key=key,
        transport=_transport(channel),
        channel=channel,
        target=channel.target,
        subject=title[:255],
        body=text if document is None else "",
        payload=document or {},
        next_attempt_at=now,
        created_at=now,
        **extra,
    )


def insert(rows: list[Delivery]) -> int:
    """Insert the rows not already planned; return how many this call inserted."""
    if not rows:
        return 0
    known = set(
        Delivery.objects.filter(key__in=[r.key for r in rows]).values_list("key", flat=True)
    )
    fresh = [r for r in rows if r.key not in known]
    if not fresh:
        return 0
    try:
        with transaction.atomic():
            Delivery.objects.bulk_create(fresh)
        return len(fresh)
    except IntegrityError:
        pass  # another scheduler planned some of them meanwhile
    inserted = 0
    for row in fresh:
        row.pk = None
        try:
            with transaction.atomic():
                row.save(force_insert=True)
            inserted += 1
        except IntegrityError:
            if not Delivery.objects.filter(key=row.key).exists():
                raise
    return inserted


def _route_batch(events: list[Event], table: list[Route], now: datetime) -> int:
    rows = [
        event_delivery(event, route.channel, now)
        for event in events
        for route in table
        if route.wants(event.kind, event.host_id)
    ]
    with transaction.atomic():
        RoutedEvent.objects.bulk_create([RoutedEvent(event=e, routed_at=now) for e in events])
        Delivery.objects.bulk_create(rows)
    return len(rows)


def _route_one(event: Event, table: list[Route], now: datetime) -> int:
    try:
        return _route_batch([event], table, now)
    except IntegrityError:
        return 0  # routed by another scheduler


def route_events(now: datetime, table: list[Route], result: PlanResult, chunk: int = 500) -> None:
    routed = RoutedEvent.objects.filter(event=OuterRef("pk"))
    events = list(
        Event.objects.filter(created_at__gte=now - ROUTE_WINDOW)
        .filter(~Exists(routed))
        .order_by("created_at", "id")
    )
    for start in range(0, len(events), chunk):
        batch = events[start : start + chunk]

        def route(batch: list[Event] = batch) -> int:
            try:
                return _route_batch(batch, table, now)
            except IntegrityError:
                return sum(_route_one(e, table, now) for e in batch)

        result.deliveries += retrying(route)
        result.events += len(batch)


def plan_reminders(now: datetime, table: list[Route], result: PlanResult) -> None:
    """While a host stays failing or overdue, the n-th reminder falls due n *
    remind_every_hours after the transition; only the newest one is planned."""
    reminding = [r for r in table if r.channel.remind_every_hours]
    if not reminding:
        return
    bad = list(
        HostAlertState.objects.exclude(state=HostAlertState.State.OK)
        .filter(event__isnull=False, host__enabled=True)
        .select_related("event")
    )
    rows = []
    for state in bad:
        for route in reminding:
            if not route.wants(state.event.kind, state.host_id):
                continue
            n = int((now - state.since) / timedelta(hours=route.channel.remind_every_hours))
            if n >= 1:
                rows.append(event_delivery(state.event, route.channel, now, reminder=n))
    result.reminders += retrying(lambda: insert(rows))


def _digest_text(route: Route, now: datetime) -> tuple[str, str]:
    states = HostAlertState.objects.exclude(state=HostAlertState.State.OK)
    events = Event.objects.filter(created_at__gte=now - timedelta(days=1))
    if route.hosts is not None:
        states = states.filter(host_id__in=route.hosts)
        events = events.filter(host_id__in=route.hosts)
    if route.kinds is not None:
        events = events.filter(kind__in=route.kinds)
    bad = list(states.select_related("host").order_by("host__name"))
    recent = list(events.order_by("-created_at")[:DIGEST_EVENTS_MAX])
    title = f"pobsync daily digest {now:%Y-%m-%d}: {len(bad)} host(s) need attention"
    lines = [f"Hosts failing or overdue now: {len(bad)}"]
    lines += [f"  {s.host.name}: {s.state} since {s.since:%Y-%m-%d %H:%M} UTC" for s in bad]
    lines += ["", f"Events in the last 24 h: {len(recent)}"]
    lines += [f"  {e.created_at:%Y-%m-%d %H:%M} {e.subject} {e.kind}" for e in recent]
    return title, "\n".join(lines) + "\n"


def plan_digests(now: datetime, table: list[Route], result: PlanResult) -> None:
    rows = []
    for route in table:
        hour = route.channel.digest_hour
        if hour is None or now.hour < hour:
            continue
        key = f"digest:{route.channel.pk}:{now:%Y-%m-%d}"
        if Delivery.objects.filter(key=key).exists():
            continue
        title, text = _digest_text(route, now)
        document = None
        if route.channel.kind == Channel.Kind.WEBHOOK:
            document = messages.payload("digest", title, text)
        rows.append(_delivery(route.channel, key, title, text, document, now))
    result.digests += retrying(lambda: insert(rows))


def ping_body(run: dict) -> str:
    text = "\n".join(part for part in (run["message"], run["log_tail"]) if part)
    data = text.encode("utf-8", "replace")[-PING_BODY_MAX:]
    return data.decode("utf-8", "ignore")


def _ping_rows(hosts: dict[int, tuple[str, str]], runs: Iterable[dict], now: datetime) -> list:
    rows = []
    for run in runs:
        name, url = hosts[run["host_id"]]
        common = {"transport": Transport.PING, "host_id": run["host_id"], "next_attempt_at": now}
        rows.append(
            Delivery(
                key=f"ping:{run['id']}:start",
                target=f"{url}/start",
                subject=f"{name} start (run {run['id']})",
                created_at=now,
                **common,
            )
        )
        if run["outcome"] == BackupRun.Outcome.RUNNING:
            continue
        ok = run["outcome"] in (BackupRun.Outcome.SUCCESS, BackupRun.Outcome.WARNING)
        rows.append(
            Delivery(
                key=f"ping:{run['id']}:end",
                target=url if ok else f"{url}/fail",
                subject=f"{name} {run['outcome']} (run {run['id']})",
                body=ping_body(run),
                created_at=now,
                **common,
            )
        )
    return rows


def plan_pings(now: datetime, result: PlanResult) -> None:
    """healthchecks.io convention per host with a ping URL: <url>/start for each run
    (a runner claimed its job), then <url> (success, warning) or <url>/fail with the
    log tail. Start is always planned before end, so its row id is lower."""
    hosts = {
        pk: (name, url.rstrip("/"))
        for pk, name, url in Host.objects.exclude(ping_url="").values_list("pk", "name", "ping_url")
    }
    if not hosts:
        return
    runs = BackupRun.objects.filter(
        host_id__in=list(hosts), started_at__gte=now - PING_WINDOW
    ).order_by("started_at", "id")
    fields = ("id", "host_id", "outcome", "message", "log_tail")
    result.pings += retrying(lambda: insert(_ping_rows(hosts, runs.values(*fields), now)))


def plan(now: datetime) -> PlanResult:
    """Plan every delivery due by `now`."""
    result = PlanResult()
    table = routes()
    route_events(now, table, result)
    plan_reminders(now, table, result)
    plan_digests(now, table, result)
    plan_pings(now, result)
    return result
