from __future__ import annotations

from datetime import datetime

from pobsync_models.models import Channel
from pobsync_scheduler.daemon import Scheduler


def scheduler_pass(now: datetime) -> None:
    """One pass of the real scheduler daemon (reap, tick, alerts), sending inline as
    `pobsync scheduler --once --now` does."""
    Scheduler(interval=60, now=now, send_inline=True, say=lambda text: None).process_one()


def email_channel(name: str = "ops", **kw) -> Channel:
    hosts = kw.pop("hosts", [])
    channel = Channel.objects.create(name=name, kind="email", target=f"{name}@example.com", **kw)
    channel.hosts.set(hosts)
    return channel


def webhook_channel(url: str, name: str = "hook", **kw) -> Channel:
    return Channel.objects.create(name=name, kind="webhook", target=url, **kw)
