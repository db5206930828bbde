from __future__ import annotations

from django.apps import AppConfig


class PobsyncModelsConfig(AppConfig):
    name = "pobsync_models"
    verbose_name = "pobsync"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from pobsync_models import checks  # noqa: F401  (registers system checks)
