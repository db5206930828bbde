"""What a notification says: a title naming the subject and its new state, a body with
the reason, the last success and a link, and the webhook's JSON document (docs/alerts.md,
"Webhook JSON", schema SCHEMA)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pobsync_models.models import Event

SCHEMA = "pobsync.notification/1"
_STATE_WORD = {
    Event.Kind.HOST_FAILING: "failing",
    Event.Kind.HOST_OVERDUE: "overdue",
    Event.Kind.HOST_RECOVERED: "recovered",
    Event.Kind.JOB_REAPED: "job reaped (runner lost)",
    Event.Kind.RUNNER_LOST: "lost",
    Event.Kind.SCHEDULER_LOST: "lost",
}


def _when(value: str | datetime | None) -> str:
    if value is None:
        return "never"
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return f"{value:%Y-%m-%d %H:%M} UTC"


def title(event: Event, reminder: int = 0) -> str:
    """`h1 failing`, `h1 recovered`, `runner box:12:ab lost`; reminders say `still`."""
    word = _STATE_WORD.get(event.kind, event.kind.replace("_", " "))
    if event.kind in (Event.Kind.RUNNER_LOST, Event.Kind.SCHEDULER_LOST):
        process = event.details.get("process", "process")
        return f"{process} {event.subject} {word}"
    if reminder:
        return f"{event.subject} still {word} (reminder {reminder})"
    return f"{event.subject} {word}"


def body(event: Event, reminder: int = 0) -> str:
    lines = [event.message, ""]
    details = event.details or {}
    if event.kind.startswith("host_"):
        lines.append(f"Last success: {_when(details.get('last_success_at'))}")
    if details.get("url"):
        lines.append(f"Host page: {details['url']}")
    lines.append(f"Detected: {_when(event.created_at)}")
    if reminder:
        lines.append(f"Reminder {reminder}: the state has not changed since then.")
    lines.append(f"Event: {event.key}")
    return "\n".join(lines) + "\n"


def event_document(event: Event) -> dict[str, Any]:
    return {
        "id": event.pk,
        "key": event.key,
        "kind": event.kind,
        "severity": event.severity,
        "subject": event.subject,
        "host": event.subject if event.host_id else None,
        "message": event.message,
        "details": event.details,
        "created_at": event.created_at.isoformat(),
    }


def payload(kind: str, title_text: str, text: str, **extra: Any) -> dict[str, Any]:
    """The webhook document before sending (send adds `delivery`)."""
    return {"schema": SCHEMA, "type": kind, "title": title_text, "text": text, **extra}
