"""Template helpers for the dashboard: ages with the exact UTC time on hover, sizes,
durations and status badges (colour and text, never colour alone)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django import template
from django.utils.html import escape
from django.utils.safestring import mark_safe

from pobsync_models.units import format_bytes

register = template.Library()

_UNITS = ((86400 * 365, "y"), (86400, "d"), (3600, "h"), (60, "min"), (1, "s"))


def span(delta: timedelta) -> str:
    """A short human duration: 45 s, 12 min, 3 h, 2 d (two units when they matter)."""
    seconds = int(abs(delta.total_seconds()))
    if seconds < 60:
        return f"{seconds} s"
    for size, unit in _UNITS:
        if seconds >= size:
            major, rest = divmod(seconds, size)
            smaller = next(((s, u) for s, u in _UNITS if s < size), None)
            if major < 10 and smaller and rest >= smaller[0] and unit in ("d", "h"):
                return f"{major} {unit} {rest // smaller[0]} {smaller[1]}"
            return f"{major} {unit}"
    return f"{seconds} s"  # pragma: no cover


def utc(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@register.filter
def ago(value: datetime | None, now: datetime) -> str:
    """<time> showing "3 h ago" / "in 20 min", the exact UTC time in its title."""
    if value is None:
        return mark_safe('<span class="muted">never</span>')  # noqa: S308  (constant)
    delta = now - value
    text = f"{span(delta)} ago" if delta >= timedelta(0) else f"in {span(delta)}"
    moment = value.astimezone(UTC)
    # Every part is made here from a datetime (digits, units, "UTC"): nothing to escape,
    # and format_html's escaping was a tenth of the dashboard's render time.
    return mark_safe(  # noqa: S308
        f'<time datetime="{moment.isoformat(timespec="seconds")}" '
        f'title="{moment:%Y-%m-%d %H:%M:%S} UTC">{text}</time>'
    )


@register.filter
def exact(value: datetime | None) -> str:
    return utc(value) if value is not None else ""


@register.simple_tag
def duration(start: datetime | None, end: datetime | None, now: datetime | None = None) -> str:
    if start is None:
        return ""
    end = end or now
    if end is None:
        return ""
    return span(end - start)


@register.filter
def size(value: int | None) -> str:
    """Bytes in binary units: 0 B, 512 B, 1.5 KiB, 23.4 GiB."""
    return "" if value is None else format_bytes(value)


_BADGE_TEXT = {
    "ok": "OK",
    "new": "new",
    "success": "success",
    "superseded": "continued later",  # a partial a later run took over as its seed
}


@register.filter
def badge(value: object) -> str:
    """A status pill: the class picks the colour, the text says the same in words."""
    if value in (None, ""):
        return mark_safe('<span class="muted">—</span>')  # noqa: S308  (constant)
    name = escape(str(value))
    return mark_safe(f'<span class="badge b-{name}">{_BADGE_TEXT.get(name, name)}</span>')  # noqa: S308


@register.filter
def percent(value: float | None) -> str:
    return "" if value is None else f"{value:.0f}%"


@register.filter
def tail(value: str, lines: int = 3) -> str:
    """The last `lines` lines of a log tail, for a table cell."""
    return "\n".join((value or "").strip().splitlines()[-int(lines) :])


@register.filter
def duration_text(value: timedelta | None) -> str:
    return "" if value is None else span(value)


@register.filter
def unixtime(value: float | None) -> datetime | None:
    """A POSIX timestamp (a file's mtime) as an aware UTC datetime, for |date."""
    return None if value is None else datetime.fromtimestamp(value, UTC)


@register.filter
def shown(value: str) -> str:
    """A name from a snapshot as printable text: bytes that are not UTF-8 (kept by
    os.fsdecode as surrogates) become U+FFFD instead of breaking the page."""
    return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


@register.filter
def pathquote(value: str) -> str:
    """A snapshot path for a query string, byte for byte (%-encoded, "/" kept)."""
    from urllib.parse import quote

    return quote(value.encode("utf-8", "surrogateescape"), safe="/")
