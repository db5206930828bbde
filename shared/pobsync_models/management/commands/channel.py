from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError, CommandParser
from django.core.validators import validate_email
from django.db import transaction

from pobsync_models.alerts import messages, transports
from pobsync_models.commandbase import (
    GROUP_SERVICE,
    PobsyncCommand,
    format_table,
    get_host,
    validation_error,
)
from pobsync_models.models import Channel
from pobsync_models.validators import validate_http_url


def _kinds(values: list[str] | None) -> list[str]:
    return sorted({k.strip() for v in values or [] for k in v.split(",") if k.strip()})


class Command(PobsyncCommand):
    help = "Notification channels (email, webhook): add, list, remove, test."
    cli_name = "channel"
    cli_group = GROUP_SERVICE

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        add = actions.add_parser("add", help="create a channel")
        add.add_argument("name", help="channel name (letters, digits, '.', '_', '-')")
        target = add.add_mutually_exclusive_group(required=True)
        target.add_argument("--email", metavar="ADDRESS", help="send email to ADDRESS")
        target.add_argument("--webhook", metavar="URL", help="POST JSON to URL")
        add.add_argument("--secret", help="webhook: HMAC-SHA256 key for the signature header")
        add.add_argument(
            "--host", action="append", metavar="H", help="only this host (repeatable; default all)"
        )
        add.add_argument(
            "--events",
            nargs="+",
            metavar="KIND",
            help="only these event kinds (space or comma separated; default all)",
        )
        add.add_argument(
            "--remind-every", type=int, metavar="HOURS", help="remind while a host stays bad"
        )
        add.add_argument("--digest-hour", type=int, metavar="H", help="daily digest at H UTC")
        actions.add_parser("list", help="list channels")
        remove = actions.add_parser("remove", help="delete a channel and its pending deliveries")
        remove.add_argument("name")
        test = actions.add_parser("test", help="send a test message now and print the result")
        test.add_argument("name")

    def handle(self, *args: Any, **opts: Any) -> None:
        getattr(self, f"do_{opts['action']}")(opts)

    def _get(self, name: str) -> Channel:
        channel = Channel.objects.filter(name=name).first()
        if channel is None:
            raise CommandError(f"unknown channel {name!r} (see `pobsync channel list`)")
        return channel

    def do_add(self, opts: dict[str, Any]) -> None:
        name = opts["name"]
        if Channel.objects.filter(name=name).exists():
            raise CommandError(f"channel {name!r} exists: `pobsync channel remove {name}` first")
        if opts["secret"] and not opts["webhook"]:
            raise CommandError("--secret only applies to --webhook channels")
        hosts = [get_host(h) for h in opts["host"] or []]
        channel = Channel(
            name=name,
            kind=Channel.Kind.EMAIL if opts["email"] else Channel.Kind.WEBHOOK,
            target=opts["email"] or opts["webhook"],
            secret=opts["secret"] or "",
            events=_kinds(opts["events"]),
            remind_every_hours=opts["remind_every"],
            digest_hour=opts["digest_hour"],
        )
        try:
            if opts["email"]:
                validate_email(channel.target)
            else:
                validate_http_url(channel.target)
            channel.full_clean()
        except ValidationError as exc:
            raise validation_error(exc, prefix=f"channel {name}: ") from None
        with transaction.atomic():
            channel.save()
            channel.hosts.set(hosts)
        scope = ", ".join(h.name for h in hosts) or "all hosts"
        kinds = ", ".join(channel.events) or "all events"
        self.stdout.write(
            f"channel {name} added: {channel.kind} {channel.target} ({scope}; {kinds})"
        )

    def do_list(self, opts: dict[str, Any]) -> None:
        rows = [
            (
                c.name,
                c.kind,
                c.target,
                ",".join(h.name for h in c.hosts.all()) or "all",
                ",".join(c.events) or "all",
                f"{c.remind_every_hours} h" if c.remind_every_hours else "",
                f"{c.digest_hour}:00 UTC" if c.digest_hour is not None else "",
                "yes" if c.secret else "",
            )
            for c in Channel.objects.prefetch_related("hosts").order_by("name")
        ]
        if not rows:
            self.stdout.write("no channels (add one with `pobsync channel add NAME --email ...`)")
            return
        headers = ("name", "kind", "target", "hosts", "events", "remind", "digest", "signed")
        self.stdout.write(format_table(headers, rows))

    def do_remove(self, opts: dict[str, Any]) -> None:
        self._get(opts["name"]).delete()
        self.stdout.write(f"channel {opts['name']} removed")

    def do_test(self, opts: dict[str, Any]) -> None:
        channel = self._get(opts["name"])
        title = f"pobsync test message for channel {channel.name}"
        text = "This is a test: if you can read it, the channel works.\n"
        try:
            if channel.kind == Channel.Kind.EMAIL:
                transports.send_email(channel.target, title, text)
            else:
                document = messages.payload("test", title, text, event=None, reminder=0)
                transports.send_webhook(channel.target, channel.secret, document, 0)
        except transports.TransportError as exc:
            raise CommandError(f"channel {channel.name}: not delivered: {exc}") from None
        self.stdout.write(f"channel {channel.name}: delivered to {channel.target}")
