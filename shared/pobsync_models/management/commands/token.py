from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError, CommandParser

from pobsync_models.alerts import tokens
from pobsync_models.commandbase import GROUP_SERVICE, PobsyncCommand, format_table, validation_error
from pobsync_models.models import ApiToken


def _when(value: Any) -> str:
    return f"{value:%Y-%m-%d %H:%M}" if value else ""


class Command(PobsyncCommand):
    help = "Read-only API tokens for /api/ and /metrics: create, list, revoke."
    cli_name = "token"
    cli_group = GROUP_SERVICE

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        create = actions.add_parser("create", help="create a token and print it once")
        create.add_argument("name", help="what the token is for, e.g. prometheus")
        actions.add_parser("list", help="list tokens (never the tokens themselves)")
        revoke = actions.add_parser("revoke", help="revoke a token at once")
        revoke.add_argument("name")

    def handle(self, *args: Any, **opts: Any) -> None:
        action = opts["action"]
        if action == "create":
            if ApiToken.objects.filter(name=opts["name"]).exists():
                raise CommandError(f"token {opts['name']!r} exists: revoke it or pick a new name")
            try:
                _, token = tokens.create(opts["name"])
            except ValidationError as exc:
                raise validation_error(exc, prefix=f"token {opts['name']}: ") from None
            self.stderr.write(f"token {opts['name']} created; it is shown only this once:")
            self.stdout.write(token)
        elif action == "revoke":
            if not tokens.revoke(opts["name"]):
                raise CommandError(f"no active token {opts['name']!r} (see `pobsync token list`)")
            self.stdout.write(f"token {opts['name']} revoked")
        else:
            rows = [
                (
                    t.name,
                    f"{t.prefix}...",
                    _when(t.created_at),
                    _when(t.last_used_at),
                    "revoked" if t.revoked_at else "active",
                )
                for t in ApiToken.objects.order_by("name")
            ]
            if not rows:
                self.stdout.write("no tokens (create one with `pobsync token create NAME`)")
                return
            self.stdout.write(
                format_table(("name", "token", "created", "last used", "status"), rows)
            )
