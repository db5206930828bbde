"""Notification channels, the outbox of deliveries, and each host's alert state.

The scheduler's notification pass (pobsync_models.alerts) is the only writer of
HostAlertState and Delivery; producers record Events and never touch these tables.
"""

from __future__ import annotations

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from pobsync_models.validators import validate_channel_name, validate_event_kinds


class Channel(models.Model):
    """Where notifications go: an email address or a webhook URL, for all hosts (no
    hosts chosen) or the chosen ones, for all event kinds (empty list) or the chosen."""

    class Kind(models.TextChoices):
        EMAIL = "email"
        WEBHOOK = "webhook"

    name = models.CharField(max_length=64, unique=True, validators=[validate_channel_name])
    kind = models.CharField(max_length=16, choices=Kind.choices)
    target = models.CharField(max_length=1024, help_text="Email address or webhook URL.")
    secret = models.CharField(
        max_length=255, blank=True, help_text="Webhook only: HMAC-SHA256 key for the signature."
    )
    hosts = models.ManyToManyField(
        "pobsync_models.Host", blank=True, related_name="channels", help_text="None: all hosts."
    )
    events = models.JSONField(
        default=list,
        blank=True,
        validators=[validate_event_kinds],
        help_text="Event kinds to notify; empty: all.",
    )
    remind_every_hours = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="Repeat a host's failing/overdue notice every N hours while it stays bad.",
    )
    digest_hour = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        validators=[MaxValueValidator(23)],
        help_text="Send a daily digest at this UTC hour; empty: no digest.",
    )
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind} {self.target})"


class Delivery(models.Model):
    """One message to one channel (or one host's ping URL): the outbox row.

    `key` is unique per (event, channel, reminder number), per (run, ping) and per
    (channel, digest day), so however many schedulers plan deliveries, each message
    exists once; sending is claimed with a conditional UPDATE of next_attempt_at.
    """

    class Transport(models.TextChoices):
        EMAIL = "email"
        WEBHOOK = "webhook"
        PING = "ping"

    class State(models.TextChoices):
        PENDING = "pending"
        DELIVERED = "delivered"
        GAVE_UP = "gave_up"

    key = models.CharField(max_length=255, unique=True)
    transport = models.CharField(max_length=16, choices=Transport.choices)
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    event = models.ForeignKey(
        "pobsync_models.Event",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="deliveries",
    )
    channel = models.ForeignKey(
        Channel, null=True, blank=True, on_delete=models.CASCADE, related_name="deliveries"
    )
    host = models.ForeignKey(
        "pobsync_models.Host",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="deliveries",
    )
    target = models.CharField(max_length=1024, help_text="Address or URL at planning time.")
    subject = models.CharField(max_length=255)
    body = models.TextField(blank=True)
    payload = models.JSONField(default=dict, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    last_error = models.TextField(blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-id"]
        verbose_name_plural = "deliveries"
        indexes = [
            models.Index(fields=["state", "next_attempt_at"], name="delivery_due_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.transport} {self.subject} ({self.state})"


class HostAlertState(models.Model):
    """The alert state the scheduler last recorded for a host: ok, failing or overdue.

    `seq` counts transitions; a transition is a conditional UPDATE on (state, seq), so of
    two schedulers that see the same change one moves the row and records the event.
    `event` is the event that opened the current bad state (reminders repeat it).
    """

    class State(models.TextChoices):
        OK = "ok"
        FAILING = "failing"
        OVERDUE = "overdue"

    host = models.OneToOneField(
        "pobsync_models.Host", primary_key=True, on_delete=models.CASCADE, related_name="+"
    )
    state = models.CharField(max_length=16, choices=State.choices, default=State.OK)
    seq = models.PositiveIntegerField(default=0)
    since = models.DateTimeField()
    event = models.ForeignKey(
        "pobsync_models.Event", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    def __str__(self) -> str:
        return f"host {self.host_id} {self.state}"


class RoutedEvent(models.Model):
    """Marks an event whose deliveries were planned, so each event is routed once."""

    event = models.OneToOneField(
        "pobsync_models.Event", primary_key=True, on_delete=models.CASCADE, related_name="+"
    )
    routed_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"event {self.event_id} routed"


class ApiToken(models.Model):
    """A read-only bearer token for /api/ and /metrics. Only its SHA-256 is stored;
    the token itself is printed once by `pobsync token create`."""

    name = models.CharField(max_length=64, unique=True, validators=[validate_channel_name])
    prefix = models.CharField(max_length=16, help_text="The token's first characters.")
    digest = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}...)"
