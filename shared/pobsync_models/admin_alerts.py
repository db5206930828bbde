"""Admin for alerts: channels are editable; deliveries (the outbox) are read-only with
a "retry now" action; API tokens are created from the CLI (shown once) and can be
revoked here."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from pobsync_models.admin import ReadOnlyAdmin
from pobsync_models.models import ApiToken, Channel, Delivery
from pobsync_models.validators import validate_http_url


class ChannelForm(forms.ModelForm):
    class Meta:
        model = Channel
        fields = (
            "name",
            "kind",
            "target",
            "secret",
            "hosts",
            "events",
            "remind_every_hours",
            "digest_hour",
            "enabled",
        )
        widgets = {"secret": forms.PasswordInput(render_value=True)}

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        kind, target = data.get("kind"), data.get("target") or ""
        try:
            if kind == Channel.Kind.EMAIL:
                validate_email(target)
            elif kind == Channel.Kind.WEBHOOK:
                validate_http_url(target)
        except ValidationError as exc:
            self.add_error("target", exc)
        if kind == Channel.Kind.EMAIL and data.get("secret"):
            self.add_error("secret", "a secret only applies to webhook channels")
        return data


@admin.register(Channel)
class ChannelAdmin(admin.ModelAdmin):
    form = ChannelForm
    list_display = ("name", "kind", "target", "enabled", "remind_every_hours", "digest_hour")
    list_filter = ("kind", "enabled")
    filter_horizontal = ("hosts",)


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyAdmin):
    list_display = (
        "created_at",
        "transport",
        "subject",
        "target",
        "state",
        "attempts",
        "next_attempt_at",
        "delivered_at",
        "last_error",
    )
    list_filter = ("state", "transport")
    search_fields = ("key", "subject", "target")
    actions = ["retry_now"]

    @admin.action(description="Retry now (also deliveries that were given up)")
    def retry_now(self, request: HttpRequest, queryset: QuerySet) -> None:
        n = queryset.exclude(state=Delivery.State.DELIVERED).update(
            state=Delivery.State.PENDING, next_attempt_at=timezone.now(), attempts=0
        )
        self.message_user(
            request, f"{n} delivery(ies) will be sent on the next pass", messages.SUCCESS
        )


@admin.register(ApiToken)
class ApiTokenAdmin(ReadOnlyAdmin):
    list_display = ("name", "prefix", "created_at", "last_used_at", "revoked_at")
    actions = ["revoke"]

    @admin.action(description="Revoke the selected tokens")
    def revoke(self, request: HttpRequest, queryset: QuerySet) -> None:
        n = queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
        self.message_user(request, f"{n} token(s) revoked", messages.SUCCESS)
